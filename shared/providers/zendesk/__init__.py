"""Zendesk: webhooks of Zendesk events and of triggers, signed with the signing secret."""
