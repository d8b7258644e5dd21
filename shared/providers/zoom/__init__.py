"""Zoom: events signed in `x-zm-signature` (v0=), and its `endpoint.url_validation`."""
