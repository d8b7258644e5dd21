"""Slash commands from the chat (SPEC §20): `/hookhub subscribe|unsubscribe|list|link|help`
taken from the chat's events, run off the consumer's path as the user who typed them,
answered in their channel."""
