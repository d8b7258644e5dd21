"""A generic source authenticated with HTTP Basic credentials."""
