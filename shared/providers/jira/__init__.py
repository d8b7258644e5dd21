"""Jira: Atlassian webhooks with a shared secret."""
