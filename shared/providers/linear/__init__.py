"""Linear: webhooks signed in `Linear-Signature`, timed by the body's `webhookTimestamp`."""
