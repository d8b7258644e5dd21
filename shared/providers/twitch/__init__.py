"""Twitch: EventSub notifications over webhooks, signed with the subscription's secret."""
