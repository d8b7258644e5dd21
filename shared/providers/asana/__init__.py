"""Asana: webhooks (events on a resource), with the X-Hook-Secret handshake."""
