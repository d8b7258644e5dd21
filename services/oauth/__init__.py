"""The oauth service.

Connects workspaces to providers and keeps their tokens encrypted and fresh."""
