"""The delivery service.

Sends the chat product's events to subscribers' URLs, signed, retried and logged."""
