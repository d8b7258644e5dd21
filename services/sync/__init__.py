"""The sync service.

Keeps channels in sync with Slack, Discord and Telegram both ways."""
