"""ASR Hub: one server, many speech recognisers behind it, any client in front of it."""

from .core.version import VERSION as __version__

__all__ = ["__version__"]
