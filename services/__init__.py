"""The deployable hookhub services, their command line and the embedded development stack."""

from shared.kernel.version import __version__

__all__ = ["__version__"]
