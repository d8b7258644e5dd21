"""Microsoft Teams, as a bot on the Bot Framework."""
