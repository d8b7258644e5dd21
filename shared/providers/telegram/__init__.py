"""Telegram: Bot API updates delivered by setWebhook."""
