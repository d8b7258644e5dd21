"""Deliveries to a developer's machine with no public address (`hookhub listen`, SPEC §21)."""
