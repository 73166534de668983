"""gRPC server interceptor: count calls and time them per method (`asrhub.v1.AsrHub/Recognize`), with
the final status code (`OK`, `INVALID_ARGUMENT`, ...)."""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any

import grpc

from ..engine.metrics import HubMetrics


def _code(context: Any, error: BaseException | None) -> str:
    code = getattr(context, "code", lambda: None)()  # set by context.abort() / set_code()
    if isinstance(code, grpc.StatusCode):
        return str(code.name)
    if error is None:
        return "OK"
    return "CANCELLED" if isinstance(error, asyncio.CancelledError) else "UNKNOWN"


class GrpcMetricsInterceptor(grpc.aio.ServerInterceptor):
    def __init__(self, metrics: HubMetrics) -> None:
        self.metrics = metrics

    def _done(self, method: str, context: Any, t0: float, error: BaseException | None) -> None:
        self.metrics.grpc_requests.labels(method, _code(context, error)).inc()
        self.metrics.grpc_latency.labels(method).observe(time.perf_counter() - t0)

    async def intercept_service(self, continuation: Callable[[grpc.HandlerCallDetails], Awaitable[Any]],
                                details: grpc.HandlerCallDetails) -> Any:
        handler = await continuation(details)
        if handler is None:
            return None
        method = str(details.method).lstrip("/")  # type: ignore[attr-defined]
        if handler.unary_unary is not None:
            inner_uu = handler.unary_unary

            async def unary_unary(request: Any, context: Any) -> Any:
                t0, error = time.perf_counter(), None
                try:
                    return await inner_uu(request, context)
                except BaseException as e:
                    error = e
                    raise
                finally:
                    self._done(method, context, t0, error)

            return grpc.unary_unary_rpc_method_handler(unary_unary, request_deserializer=handler.request_deserializer,
                                                       response_serializer=handler.response_serializer)
        if handler.stream_stream is not None:
            inner_ss = handler.stream_stream

            async def stream_stream(requests: Any, context: Any) -> AsyncIterator[Any]:
                t0, error = time.perf_counter(), None
                try:
                    async for item in inner_ss(requests, context):
                        yield item
                except BaseException as e:
                    error = e
                    raise
                finally:
                    self._done(method, context, t0, error)

            return grpc.stream_stream_rpc_method_handler(stream_stream,
                                                         request_deserializer=handler.request_deserializer,
                                                         response_serializer=handler.response_serializer)
        return handler  # unary-stream / stream-unary: none in this service (health/reflection pass through)
