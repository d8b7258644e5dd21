"""Stripe: events signed in `Stripe-Signature` (t=, v1=)."""
