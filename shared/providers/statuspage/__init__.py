"""Atlassian Statuspage: webhook subscriptions, with a token in the URL (nothing signed)."""
