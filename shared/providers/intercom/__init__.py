"""Intercom: notifications signed in `X-Hub-Signature` (sha1=, hex)."""
