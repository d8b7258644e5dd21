"""Mattermost: a self-hosted chat server, synced through a bot account (REST API v4 and its
WebSocket)."""
