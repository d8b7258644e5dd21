"""The deployable hookhub services, their command line and the embedded development stack."""

__version__ = "0.1.0"
