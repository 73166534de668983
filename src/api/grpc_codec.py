"""asrhub.v1 wire mapping for the gRPC transport: requests in (tolerant parsing, unknown fields
rejected), events out, HubError codes -> gRPC status codes."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import grpc
from google.protobuf import json_format, struct_pb2
from google.protobuf.message import DecodeError
from google.protobuf.unknown_fields import UnknownFieldSet

from ..core.errors import ErrorCode
from ..core.events import Event

STATUS: dict[ErrorCode, grpc.StatusCode] = {
    ErrorCode.invalid_command: grpc.StatusCode.INVALID_ARGUMENT,
    ErrorCode.unsupported_encoding: grpc.StatusCode.INVALID_ARGUMENT,
    ErrorCode.invalid_audio: grpc.StatusCode.INVALID_ARGUMENT,
    ErrorCode.unknown_provider: grpc.StatusCode.NOT_FOUND,
    ErrorCode.provider_unavailable: grpc.StatusCode.UNAVAILABLE,
    ErrorCode.provider_error: grpc.StatusCode.INTERNAL,
    ErrorCode.operator_unavailable: grpc.StatusCode.UNAVAILABLE,
    ErrorCode.too_many_sessions: grpc.StatusCode.RESOURCE_EXHAUSTED,
    ErrorCode.payload_too_large: grpc.StatusCode.RESOURCE_EXHAUSTED,
    ErrorCode.rate_limited: grpc.StatusCode.RESOURCE_EXHAUSTED,
    ErrorCode.unauthorized: grpc.StatusCode.UNAUTHENTICATED,
    ErrorCode.session_not_found: grpc.StatusCode.NOT_FOUND,
    ErrorCode.node_lost: grpc.StatusCode.UNAVAILABLE,
    ErrorCode.not_found: grpc.StatusCode.NOT_FOUND,
    ErrorCode.method_not_allowed: grpc.StatusCode.UNIMPLEMENTED,
    ErrorCode.headers_too_large: grpc.StatusCode.RESOURCE_EXHAUSTED,
    ErrorCode.slow_consumer: grpc.StatusCode.RESOURCE_EXHAUSTED,
    ErrorCode.internal: grpc.StatusCode.INTERNAL,
}


class BadRequest:
    """A request that could not be taken: undecodable bytes or unknown fields (invalid_command), or more
    bytes than the hub takes in one message (payload_too_large)."""

    def __init__(self, message: str, code: ErrorCode = ErrorCode.invalid_command) -> None:
        self.message = message
        self.code = code


def _unknown_fields(msg: Any, path: str = "") -> list[str]:
    """Field numbers the contract does not define, anywhere in the message."""
    found = [f"{path}#{f.field_number}" for f in UnknownFieldSet(msg)]  # type: ignore[attr-defined]
    for field, value in msg.ListFields():
        repeated = field.is_repeated if hasattr(field, "is_repeated") else field.label == field.LABEL_REPEATED
        if field.message_type is not None and not repeated:
            found += _unknown_fields(value, f"{path}{field.name}.")
    return found


def message_deserializer(message: Any, max_bytes: int | None = None) -> Callable[[bytes], Any]:
    """A tolerant deserializer for any request type: bytes that do not decode, or that carry fields the
    contract does not define, become a BadRequest the handler answers with INVALID_ARGUMENT (grpc's own
    handling of a raising deserializer would be an untyped status without `asrhub-error-code`); a message
    over `max_bytes` becomes a payload_too_large BadRequest, unparsed (the server lets grpc take somewhat
    larger messages so that this check, not grpc's code-less RESOURCE_EXHAUSTED, answers them)."""
    name = message.DESCRIPTOR.name

    def parse(data: bytes) -> Any:
        if max_bytes is not None and len(data) > max_bytes:
            return BadRequest(f"{name} message of {len(data)} bytes exceeds the limit of {max_bytes}",
                              ErrorCode.payload_too_large)
        try:
            msg = message.FromString(data)
        except Exception as e:  # DecodeError, and anything the C parser raises on hostile bytes
            reason = str(e) if isinstance(e, DecodeError) else type(e).__name__
            return BadRequest(f"request is not a valid {name} message: {reason}")
        unknown = _unknown_fields(msg)
        if unknown:
            return BadRequest(f"unknown field(s) {', '.join(unknown)} in {name}")
        return msg
    return parse


def request_deserializer(pb: Any) -> Callable[[bytes], Any]:
    return message_deserializer(pb.StreamingRequest)


def start_to_dict(start: Any) -> dict[str, Any]:
    """StartSession message -> the StartSession JSON shape (only the fields that are set)."""
    # every field with presence appears only when set; Resume's plain fields always (last_seq 0 is a value)
    d = json_format.MessageToDict(start, preserving_proto_field_name=True, always_print_fields_with_no_presence=True)
    if isinstance(d.get("resume"), dict) and "last_seq" in d["resume"]:  # uint64: proto JSON writes a string
        d["resume"]["last_seq"] = int(d["resume"]["last_seq"])
    return d


def _known(message: Any, d: dict[str, Any]) -> dict[str, Any]:
    """The keys of d that the message type defines (the JSON events may grow fields before the .proto)."""
    fields = message.DESCRIPTOR.fields_by_name
    return {k: v for k, v in d.items() if k in fields}


def event_to_proto(pb: Any, ev: Event) -> Any:
    """A hub event -> asrhub.v1.Event: common fields plus the payload that matches its type."""
    d = ev.to_dict()
    msg = pb.Event(type=ev.type, session_id=ev.session_id, seq=ev.seq, ts=ev.ts)
    t = ev.type
    if t == "session.started":
        config = struct_pb2.Struct()
        config.update(d.get("config") or {})
        msg.session_started.CopyFrom(pb.SessionStarted(provider=d["provider"], language=d.get("language") or "",
                                                       audio=pb.AudioSpec(**d["audio"]), config=config,
                                                       resumed=d.get("resumed", False),
                                                       migrated=d.get("migrated"),
                                                       audio_from_ms=d.get("audio_from_ms")))
    elif t in ("speech.started", "speech.ended"):
        msg.speech.CopyFrom(pb.SpeechEdge(offset_ms=d["offset_ms"], reason=d.get("reason"),
                                          turn_probability=d.get("turn_probability")))
    elif t in ("transcript.partial", "transcript.final"):
        final = t == "transcript.final"
        msg.transcript.CopyFrom(pb.Transcript(
            utterance_id=d["utterance_id"], text=d["text"], stable_text=d.get("stable_text", d["text"]),
            is_final=final, start_ms=d["start_ms"], end_ms=d["end_ms"],
            words=[pb.Word(**_known(pb.Word, w)) for w in d.get("words") or []], language=d.get("language") or "",
            provider=d.get("provider", ""), latency_ms=d.get("latency_ms", 0), lag_ms=d.get("lag_ms"),
            recording=d.get("recording"), end_of_turn=d.get("end_of_turn")))
    elif t == "session.migrated":
        msg.session_migrated.CopyFrom(pb.SessionMigrated(from_node=d["from_node"], to_node=d["to_node"],
                                                         audio_from_ms=d["audio_from_ms"]))
    elif t == "provider.switched":
        msg.provider_switched.CopyFrom(pb.ProviderSwitched(**{"from": d["from"], "to": d["to"], "reason": d["reason"]}))
    elif t == "wakeword.detected":
        msg.wakeword.CopyFrom(pb.WakewordDetected(phrase=d["phrase"], offset_ms=d["offset_ms"]))
    elif t == "error":
        msg.error.CopyFrom(pb.Error(code=d["code"], message=d["message"], fatal=d.get("fatal", False),
                                    retry_after_ms=d.get("retry_after_ms")))
    elif t == "session.ended":
        stats = {k: int(v) for k, v in _known(pb.SessionStats, d.get("stats") or {}).items()
                 if isinstance(v, int | float) and v >= 0}
        msg.session_ended.CopyFrom(pb.SessionEnded(reason=d["reason"], stats=pb.SessionStats(**stats)))
    return msg
