"""Grafana Alerting: webhook contact point notifications (HMAC, bearer or Basic)."""
