"""The takeover's events (DESIGN §3.2, §8) in the one vocabulary: `session.migrated {from_node, to_node,
audio_from_ms}` and `session.started {resumed, migrated, audio_from_ms}`, as JSON (the event log, every wire but
gRPC, the client's parser) and as asrhub.v1 protobuf (the hub's codec out, the client's back in). A started
event of a session that did not move keeps exactly its old keys."""

from __future__ import annotations

import json

import pytest
from pydantic import ValidationError

from asrhub.api.grpc_codec import event_to_proto
from asrhub.client import SessionMigrated as ClientSessionMigrated
from asrhub.client import parse_event as client_parse
from asrhub.client.grpc import event_from_proto
from asrhub.core.events import (
    AudioFormat,
    EffectiveConfig,
    EffectiveVad,
    EffectiveWakeword,
    Event,
    SessionMigrated,
    SessionStarted,
    parse_event,
)
from asrhub.engine.continued import ContinuedChannel
from asrhub.wire import grpc_gen

CONFIG = EffectiveConfig(interim_results=True, word_timestamps=False,
                         vad=EffectiveVad(enabled=True, kind="webrtc", silence_ms=500, min_speech_ms=100,
                                          pre_roll_ms=200, max_utterance_s=30.0),
                         wakeword=EffectiveWakeword(enabled=False), record=False, hub_sample_rate=16000,
                         interim_interval_ms=300)
AUDIO = AudioFormat(encoding="pcm_s16le", sample_rate=16000, channels=1)


def started(**kw: object) -> SessionStarted:
    fields: dict[str, object] = {"session_id": "s1", "seq": 1, "ts": 1.5, "provider": "p", "language": "en",
                                 "audio": AUDIO, "config": CONFIG, **kw}
    return SessionStarted.model_validate(fields)


MIGRATED = SessionMigrated(session_id="s1", seq=7, ts=2.5, from_node="node0", to_node="node1", audio_from_ms=4120)


def test_a_started_event_that_did_not_move_keeps_its_keys() -> None:
    keys = set(json.loads(started().to_json()))
    assert keys == {"type", "session_id", "seq", "ts", "provider", "language", "audio", "config", "resumed"}
    assert set(json.loads(started(resumed=True).to_json())) == keys


def test_json_round_trip_through_the_one_parser() -> None:
    moved = started(seq=8, resumed=True, migrated=True, audio_from_ms=4120)
    wire = json.loads(moved.to_json())
    assert (wire["resumed"], wire["migrated"], wire["audio_from_ms"]) == (True, True, 4120)
    assert parse_event(moved.to_json()) == moved
    assert json.loads(MIGRATED.to_json()) == {"type": "session.migrated", "session_id": "s1", "seq": 7, "ts": 2.5,
                                              "from_node": "node0", "to_node": "node1", "audio_from_ms": 4120}
    back = parse_event(MIGRATED.to_json())
    assert isinstance(back, SessionMigrated) and back == MIGRATED
    # the client's parser: the same models (a newer hub's extra keys dropped)
    got = client_parse({**json.loads(MIGRATED.to_json()), "reason": "lease expired"})
    assert isinstance(got, ClientSessionMigrated) and got == MIGRATED
    assert client_parse(json.loads(moved.to_json())) == moved
    assert client_parse(json.loads(started().to_json())) == started()


def test_a_migrated_event_without_its_fields_is_refused_by_name() -> None:
    with pytest.raises(ValidationError, match="audio_from_ms"):
        parse_event(json.dumps({"type": "session.migrated", "session_id": "s1", "seq": 2, "from_node": "a",
                                "to_node": "b"}))
    with pytest.raises(ValueError, match="not a hub event"):
        parse_event(json.dumps({"type": "session.moved", "session_id": "s1"}))


def test_grpc_codec_both_directions() -> None:
    pb, _ = grpc_gen.load()
    msg = event_to_proto(pb, MIGRATED)
    assert msg.WhichOneof("payload") == "session_migrated" and msg.type == "session.migrated"
    assert (msg.session_migrated.from_node, msg.session_migrated.to_node, msg.session_migrated.audio_from_ms) == \
        ("node0", "node1", 4120)
    assert event_from_proto(pb.Event.FromString(msg.SerializeToString())) == MIGRATED

    moved = started(seq=8, resumed=True, migrated=True, audio_from_ms=4120)
    msg = event_to_proto(pb, moved)
    assert msg.session_started.HasField("migrated") and msg.session_started.audio_from_ms == 4120
    back = event_from_proto(pb.Event.FromString(msg.SerializeToString()))
    assert isinstance(back, SessionStarted)
    assert (back.resumed, back.migrated, back.audio_from_ms) == (True, True, 4120)

    plain = event_to_proto(pb, started())
    assert not plain.session_started.HasField("migrated") and not plain.session_started.HasField("audio_from_ms")
    back = event_from_proto(pb.Event.FromString(plain.SerializeToString()))
    assert isinstance(back, SessionStarted) and (back.migrated, back.audio_from_ms) == (None, None)
    assert set(json.loads(back.to_json())) == set(json.loads(started().to_json()))


def test_continued_channel_turns_the_new_start_into_the_migrated_one() -> None:
    tail: list[Event] = [started(seq=n) if n == 1 else Event(type="speech.started", session_id="s1", seq=n)
                         for n in range(1, 7)]
    ch = ContinuedChannel(MIGRATED, 64, tail)
    first = ch.emit(started(seq=0))
    assert isinstance(first, SessionStarted) and first.seq == 8
    assert (first.resumed, first.migrated, first.audio_from_ms) == (True, True, 4120)
    again = ch.emit(started(seq=0))  # only the first start after the claim is the migrated one
    assert isinstance(again, SessionStarted) and again.migrated is None and not again.resumed
