"""Slack: Events API, slash commands and interactivity."""
