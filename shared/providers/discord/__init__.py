"""Discord: interactions endpoint and Webhook Events."""
