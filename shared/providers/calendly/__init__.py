"""Calendly: scheduling events (invitees booked, canceled), signed with the signing key."""
