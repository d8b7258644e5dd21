"""The integrations resource: create, read, update, delete, status (SPEC §4)."""
