"""Generic incoming webhooks: token URLs that turn Slack-compatible posts into chat messages."""
