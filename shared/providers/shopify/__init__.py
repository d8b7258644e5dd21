"""Shopify: webhooks signed in `X-Shopify-Hmac-Sha256` (base64 HMAC-SHA256 of the body)."""
