"""Notifications: GitHub and Jira events rendered into chat channels (SPEC §12)."""
