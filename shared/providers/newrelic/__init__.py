"""New Relic: Webhook destinations of alert workflows (bearer token or Basic)."""
