"""The gRPC implementation of the transport-neutral test client (tests/contract/clients.py)."""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import AsyncIterator
from typing import Any

from tests.contract.clients import Client

_END = object()


def _varint(n: int) -> bytes:
    out = bytearray()
    while True:
        b = n & 0x7F
        n >>= 7
        out.append(b | (0x80 if n else 0))
        if not n:
            return bytes(out)


class GrpcClient(Client):
    """StreamingRecognize; requests go out as raw bytes so that malformed ones can be sent too."""

    name = "grpc"

    def __init__(self, hub: Any) -> None:
        super().__init__(hub)
        from asrhub.wire import grpc_gen
        self.pb, _ = grpc_gen.load()
        self.channel: Any = None
        self.call: Any = None
        self.queue: asyncio.Queue[Any] = asyncio.Queue()
        self.reader: asyncio.Task[None] | None = None

    async def connect(self) -> None:
        import grpc
        self.channel = grpc.aio.insecure_channel(f"127.0.0.1:{self.hub.grpc_port}")
        method = self.channel.stream_stream("/asrhub.v1.AsrHub/StreamingRecognize",
                                            request_serializer=lambda b: b,
                                            response_deserializer=self.pb.Event.FromString)
        self.call = method(self._requests())
        self.stream_opened = time.time()
        self.reader = asyncio.create_task(self._read())

    async def _requests(self) -> AsyncIterator[bytes]:
        while True:
            item = await self.queue.get()
            self.queue.task_done()  # taken by the request stream (what send_audio waits for)
            if item is _END:
                return
            yield item

    async def _read(self) -> None:
        with contextlib.suppress(Exception):
            async for msg in self.call:
                arrived = time.time()  # the message is parsed; reshaping it into JSON is this client's own cost
                ev = event_to_dict(msg)
                if ev["type"] == "session.started" and not self.session_id:
                    self.session_id = ev["session_id"]
                self._on_event(ev, arrived)

    def _send(self, **kw: Any) -> None:
        self.queue.put_nowait(self.pb.StreamingRequest(**kw).SerializeToString())

    async def start(self, body: dict[str, Any]) -> str | None:
        waiter = self._start_waiter(body)
        await self.start_again(body)
        return await waiter

    async def start_again(self, body: dict[str, Any]) -> None:
        from google.protobuf import json_format
        fields = self.pb.StartSession.DESCRIPTOR.fields_by_name
        start = json_format.ParseDict({k: v for k, v in body.items() if k in fields}, self.pb.StartSession())
        raw = start.SerializeToString()
        for i, _ in enumerate(k for k in body if k not in fields):
            raw += _varint((99 + i) << 3) + b"\x01"  # a field number StartSession does not define
        self.queue.put_nowait(b"\x0a" + _varint(len(raw)) + raw)  # StreamingRequest.start (field 1)

    async def send_audio(self, data: bytes) -> None:
        """Queued for the request stream; returns once the stream has taken it (as a send on the other
        wires returns once written), or the call has ended."""
        self._send(audio=data)
        if self.reader is None or self.reader.done():
            return
        taken = asyncio.ensure_future(self.queue.join())
        try:
            await asyncio.wait({taken, self.reader}, return_when=asyncio.FIRST_COMPLETED)
        finally:
            taken.cancel()

    async def flush(self) -> None:
        self._send(flush=self.pb.Flush())

    async def stop(self) -> None:
        self._send(stop=self.pb.Stop())

    async def keepalive(self) -> None:
        self._send(keepalive=self.pb.KeepAlive())

    async def send_malformed(self) -> None:
        """Bytes that are not a StreamingRequest message at all."""
        self.queue.put_nowait(b"this is not json")

    async def send_unknown_command(self) -> None:
        """A StreamingRequest with no command the contract defines (an empty oneof)."""
        self.queue.put_nowait(b"")

    async def drop(self) -> None:
        if self.call is not None:
            self.call.cancel()
        await self.close()

    async def close(self) -> None:
        self.queue.put_nowait(_END)
        if self.reader is not None:
            with contextlib.suppress(Exception, asyncio.CancelledError):
                await asyncio.wait_for(self.reader, 10)
        if self.channel is not None:
            await self.channel.close()


def event_to_dict(msg: Any) -> dict[str, Any]:
    """A gRPC Event -> the JSON shape the other wires carry."""
    from google.protobuf import json_format
    ev: dict[str, Any] = {"type": msg.type, "session_id": msg.session_id, "seq": msg.seq, "ts": msg.ts}
    kind = msg.WhichOneof("payload")
    if kind is None:
        return ev
    payload = json_format.MessageToDict(getattr(msg, kind), preserving_proto_field_name=True,
                                        always_print_fields_with_no_presence=True)
    if kind == "transcript":
        final = payload.pop("is_final")
        if final:
            payload.pop("stable_text", None)
        else:
            for k in ("words", "language", "provider", "latency_ms"):
                payload.pop(k, None)
        if not payload.get("words"):
            payload.pop("words", None)
    if kind == "session_ended":
        payload["stats"] = {k: int(v) for k, v in payload.get("stats", {}).items()}
    ev.update(payload)
    return ev
