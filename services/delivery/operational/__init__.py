"""Operational events (SPEC §17): the delivery service's own, their timeline, and their delivery."""
