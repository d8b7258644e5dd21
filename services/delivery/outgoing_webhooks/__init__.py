"""Outgoing webhooks (endpoints): where the chat product's events are delivered, and how."""
