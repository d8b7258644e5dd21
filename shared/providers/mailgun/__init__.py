"""Mailgun: event webhooks carrying their signature in the body."""
