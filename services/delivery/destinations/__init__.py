"""Destinations beyond HTTP (SPEC §21): an endpoint's queue, topic, bus, stream or bucket."""
