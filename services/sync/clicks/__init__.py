"""Clicks on notification cards (SPEC §20): accepted from the chat's events, acted on at
the provider as the person who clicked, answered in the item's thread."""
