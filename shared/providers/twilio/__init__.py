"""Twilio: webhooks signed in `X-Twilio-Signature` over the URL and the form."""
