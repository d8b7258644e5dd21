"""A generic HMAC-signed source, configured per integration."""
