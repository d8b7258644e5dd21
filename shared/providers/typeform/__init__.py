"""Typeform: form responses, signed with the webhook's secret."""
