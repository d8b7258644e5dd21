"""Notion: integration webhooks (subscriptions)."""
