"""Prometheus Alertmanager: webhook_config notifications, authenticated by http_config."""
