"""gRPC transport (DESIGN §3.6): asrhub.v1.AsrHub on server.grpc_port, on the app's own event loop.

StreamingRecognize maps a bidi stream onto one session: the first request is `start`, then `audio`,
`flush`, `stop`; every session event goes back as an `Event` (type strings of §3.2). Errors are `error`
events (outside a session: session_id "" and seq 0), as on every other streaming transport; closing the
request stream without `stop` counts as `stop`; a dropped call detaches the session (resume with
`start.resume`). Recognize is whole-file (core.transcribe). Auth: `authorization: Bearer <key>` metadata
(checked per call when keys are configured). The standard health service and server reflection are
served too, without auth. Generated code comes from grpc_gen (built from the .proto on first use).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import AsyncIterator, Awaitable, Callable
from pathlib import Path
from typing import Any

import grpc

from ..core.auth import Purpose, bearer, key_id
from ..core.config import TlsConfig
from ..core.errors import ErrorCode, HubError
from ..core.validation import request_options
from ..engine.routing import route_upload
from ..engine.transcribe import MAX_UPLOAD_BYTES, load_audio, transcribe_audio
from ..hub import Hub
from ..providers.checks import validate_start
from ..wire import grpc_gen
from .grpc_codec import STATUS, BadRequest, message_deserializer
from .grpc_metrics import GrpcMetricsInterceptor
from .grpc_stream import GrpcStream, aclose
from .ports import grpc_port_taken, in_use

log = logging.getLogger(__name__)

SERVICE = "asrhub.v1.AsrHub"
TRANSPORT_FACTOR = 2  # grpc's max_receive_message_length, in multiples of the hub's own message limit

# a refused StreamingRecognize reads (and drops) its requests until the client half-closes, pauses this
# long (it waits for an answer, or paces its audio: no write of its is in flight), or at most REFUSAL_MAX_S
REFUSAL_IDLE_S = 0.25
REFUSAL_MAX_S = 5.0


async def drain(requests: AsyncIterator[Any], idle: float = REFUSAL_IDLE_S, at_most: float = REFUSAL_MAX_S) -> None:
    """Read and drop a refused call's requests before its status goes out. grpc's asyncio client reports
    its own `INTERNAL: Internal error from Core` instead of the server's status when one of its writes is
    in flight as that status lands (grpc/grpc#36066): a client that sends `start` and audio at once, or
    streams audio paced in real time, must see UNAUTHENTICATED all the same."""
    it = aiter(requests)
    with contextlib.suppress(Exception):  # the time is up (TimeoutError), or the stream broke: answer now
        async with asyncio.timeout(at_most):
            while True:
                await asyncio.wait_for(anext(it), idle)


async def abort(context: grpc.aio.ServicerContext, err: HubError) -> None:
    """End the call with the status for err's code; the code itself rides in trailing metadata."""
    await context.abort(STATUS[err.code], err.message, trailing_metadata=(("asrhub-error-code", err.code.value),))


class AsrHubServicer:
    def __init__(self, hub: Hub, pb: Any) -> None:
        self.hub = hub
        self.pb = pb

    def credential(self, context: grpc.aio.ServicerContext, purpose: Purpose) -> str | None:
        """`authorization: Bearer <key>` metadata -> the key's id (None when auth is off); HubError
        (unauthorized, or rate_limited) otherwise."""
        metadata = {k.lower(): v for k, v in (context.invocation_metadata() or ()) if isinstance(v, str)}
        return key_id(self.hub.auth.authenticate(bearer(metadata.get("authorization")), purpose, "this gRPC call"))

    async def authenticate(self, context: grpc.aio.ServicerContext, purpose: Purpose = "api") -> str | None:
        """`credential`, or the call aborted with UNAUTHENTICATED (RESOURCE_EXHAUSTED for rate_limited)."""
        try:
            return self.credential(context, purpose)
        except HubError as e:
            await abort(context, e)
            raise  # not reached: abort raises

    async def StreamingRecognize(self, requests: AsyncIterator[Any],  # noqa: N802 (gRPC method name)
                                 context: grpc.aio.ServicerContext) -> AsyncIterator[Any]:
        try:
            api_key = self.credential(context, "start")
        except HubError as e:
            await drain(requests)
            await abort(context, e)
            return
        stream = GrpcStream(self.hub, self.pb, api_key)
        stream.context = context
        responses = stream.run(requests)
        try:
            async for msg in responses:
                yield msg
        except HubError as e:  # node_lost: another node took the session over; the client resumes
            await abort(context, e)
        except Exception as e:  # never an untyped UNKNOWN: INTERNAL with the contract code
            if isinstance(e, grpc.aio.AbortError):
                raise
            log.exception("gRPC StreamingRecognize failed")
            await abort(context, HubError(ErrorCode.internal, f"internal error: {type(e).__name__}"))
        finally:
            await aclose(responses)  # its cleanup (detach) now, not when the generator is collected

    async def Recognize(self, request: Any, context: grpc.aio.ServicerContext) -> Any:  # noqa: N802
        return await self._unary(self._recognize, request, context)

    async def ListProviders(self, request: Any, context: grpc.aio.ServicerContext) -> Any:  # noqa: N802
        return await self._unary(self._list_providers, request, context)

    async def _unary(self, handler: Callable[[Any], Awaitable[Any]], request: Any,
                     context: grpc.aio.ServicerContext) -> Any:
        """Auth, then the handler; a request that did not decode, or any HubError, ends the call with its
        status and `asrhub-error-code`; anything unexpected with INTERNAL (never UNKNOWN)."""
        await self.authenticate(context)
        try:
            if isinstance(request, BadRequest):
                raise HubError(request.code, request.message)
            return await handler(request)
        except HubError as e:
            await abort(context, e)
        except Exception as e:
            if isinstance(e, grpc.aio.AbortError):
                raise
            log.exception("gRPC unary call failed")
            await abort(context, HubError(ErrorCode.internal, f"internal error: {type(e).__name__}"))

    async def _recognize(self, request: Any) -> Any:
        opts = request_options(provider=request.provider if request.HasField("provider") else None,
                               language=request.language if request.HasField("language") else None,
                               task=request.task if request.HasField("task") else None,
                               prompt=request.prompt if request.HasField("prompt") and request.prompt else None,
                               hotwords=list(request.hotwords) or None)
        provider = self.hub.providers.for_request(opts.provider, opts.language, opts.task)  # providers.routes
        validate_start(opts, provider, self.hub.config.limits)  # exactly as a streaming start or a REST upload
        if not request.audio:
            raise HubError(ErrorCode.invalid_audio, "no audio in the request")
        audio = await asyncio.to_thread(load_audio, request.audio)
        language = opts.language
        if routed := await route_upload(self.hub.providers, opts.provider, language, opts.task, audio):
            provider, language = routed  # no language: the one the speech is in (DESIGN §5)
        words = request.word_timestamps if request.HasField("word_timestamps") else True
        res = await transcribe_audio(provider, audio, language, words, prompt=opts.prompt, task=opts.task,
                                     hotwords=opts.hotwords)
        pb = self.pb
        return pb.RecognizeResponse(
            text=res.text, segments=[pb.Segment(**s.model_dump()) for s in res.segments],
            words=[pb.Word(**w.model_dump()) for w in res.words], language=res.language or "",
            duration_ms=res.duration_ms, provider=res.provider)

    async def _list_providers(self, request: Any) -> Any:
        pb = self.pb
        out = []
        for p in self.hub.providers.describe():
            caps = p.get("capabilities") or {}
            out.append(pb.ProviderInfo(name=p["name"], type=p.get("type") or "", status=p["status"],
                                       reason=p.get("reason") or "", model=p.get("model") or "",
                                       is_default=bool(p.get("default")), capabilities=pb.Capabilities(**caps)))
        return pb.ListProvidersResponse(providers=out)


def server_credentials(tls: TlsConfig) -> grpc.ServerCredentials:
    """The PEM key and certificate chain of `server.tls`, for the gRPC port."""
    assert tls.cert and tls.key
    return grpc.ssl_server_credentials([(Path(tls.key).read_bytes(), Path(tls.cert).read_bytes())])


class GrpcServer:
    """The grpc.aio server of one hub, started and stopped by the app's lifespan. `shared_port`: several
    processes serve one port (SO_REUSEPORT, e.g. gunicorn's workers); otherwise a taken port is an error."""

    def __init__(self, hub: Hub, shared_port: bool = False) -> None:
        self.hub = hub
        self.shared_port = shared_port
        self.server: grpc.aio.Server | None = None
        self.health: Any = None
        self.port = 0

    async def start(self) -> int:
        from grpc_health.v1 import health, health_pb2, health_pb2_grpc
        from grpc_reflection.v1alpha import reflection

        pb, _ = grpc_gen.load()
        cfg = self.hub.config
        # the hub's own limit, checked by the deserializers (payload_too_large with asrhub-error-code); grpc
        # itself refuses only messages over twice that, with a bare RESOURCE_EXHAUSTED
        limit = max(MAX_UPLOAD_BYTES, cfg.limits.max_message_bytes) + 1024 * 1024
        server = grpc.aio.server(options=[("grpc.max_receive_message_length", TRANSPORT_FACTOR * limit),
                                          ("grpc.max_send_message_length", 16 * 1024 * 1024),
                                          ("grpc.so_reuseport", int(self.shared_port))],
                                 interceptors=[GrpcMetricsInterceptor(self.hub.metrics)])
        servicer = AsrHubServicer(self.hub, pb)
        server.add_generic_rpc_handlers((grpc.method_handlers_generic_handler(SERVICE, {
            "StreamingRecognize": grpc.stream_stream_rpc_method_handler(
                servicer.StreamingRecognize, request_deserializer=message_deserializer(pb.StreamingRequest, limit),
                response_serializer=pb.Event.SerializeToString),
            "Recognize": grpc.unary_unary_rpc_method_handler(
                servicer.Recognize, request_deserializer=message_deserializer(pb.RecognizeRequest, limit),
                response_serializer=pb.RecognizeResponse.SerializeToString),
            "ListProviders": grpc.unary_unary_rpc_method_handler(
                servicer.ListProviders, request_deserializer=message_deserializer(pb.ListProvidersRequest, limit),
                response_serializer=pb.ListProvidersResponse.SerializeToString),
        }),))
        self.health = health.aio.HealthServicer()
        health_pb2_grpc.add_HealthServicer_to_server(self.health, server)
        reflection.enable_server_reflection((SERVICE, health.SERVICE_NAME, reflection.SERVICE_NAME), server)
        address = f"{cfg.server.host}:{cfg.server.grpc_port}"
        tls = cfg.server.tls
        try:  # a port that cannot be bound: 0 from some grpc versions, RuntimeError from others
            if tls.enabled:  # the same PEM pair as HTTPS (server.tls)
                self.port = server.add_secure_port(address, server_credentials(tls))
            else:
                self.port = server.add_insecure_port(address)
        except RuntimeError:
            self.port = 0
        if not self.port:
            if in_use(cfg.server.host, cfg.server.grpc_port):
                raise grpc_port_taken(cfg.server.host, cfg.server.grpc_port)
            raise HubError(ErrorCode.internal, f"gRPC cannot listen on {address}")
        await server.start()
        for name in ("", SERVICE):
            await self.health.set(name, health_pb2.HealthCheckResponse.SERVING)
        self.server = server
        log.info("gRPC listening on %s:%d", cfg.server.host, self.port)
        return self.port

    async def stop(self, grace: float | None = None) -> None:
        if self.server is None:
            return
        if self.health is not None:
            await self.health.enter_graceful_shutdown()
        await self.server.stop(grace)
        self.server = None
