"""Notification subscriptions: a GitHub or Jira integration's events, filtered, in a chat
channel (SPEC §12)."""
