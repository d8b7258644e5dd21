"""hookhub's version: the package's (pyproject.toml reads it here), the one the OpenAPI and
AsyncAPI documents give and the one in the User-Agent of what hookhub sends."""

__version__ = "0.1.0"
