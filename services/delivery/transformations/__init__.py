"""Transformations (SPEC §17): an endpoint's JavaScript that changes or cancels its webhooks."""
