"""Google: OAuth only (offline access, user info)."""
