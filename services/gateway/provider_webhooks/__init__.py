"""Provider webhooks: GitHub, Slack, Discord, Telegram and Jira, verified and put on Kafka."""
