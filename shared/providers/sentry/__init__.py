"""Sentry: integration webhooks signed in `Sentry-Hook-Signature` (hex HMAC-SHA256 of the body)."""
