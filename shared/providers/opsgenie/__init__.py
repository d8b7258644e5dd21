"""Opsgenie: the outgoing Webhook integration's alert actions, with a custom token header."""
