"""A generic source authenticated by a token in a header."""
