"""The generated gRPC code now lives with the wire vocabulary: core.grpc_gen (shared with asrhub.client)."""

from ..core.grpc_gen import PACKAGE, ensure, generate, load

__all__ = ["PACKAGE", "ensure", "generate", "load"]
