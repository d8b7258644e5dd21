"""Deliveries: one event to one endpoint, its attempts, retries and dead letters."""
