"""ASR Hub: one server, many speech recognisers behind it, any client in front of it."""

__version__ = "0.1.0"
