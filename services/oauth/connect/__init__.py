"""Connecting an integration through OAuth: `/api/auth/oauth/connect` and its callback."""
