"""Revoking tokens at the provider on disconnect, and retrying what could not be revoked."""
