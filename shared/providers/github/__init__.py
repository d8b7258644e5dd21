"""GitHub: repository, organization and App webhooks."""
