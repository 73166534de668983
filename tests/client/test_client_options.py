"""asrhub.client: start options given as a dict or keyword arguments that are no valid StartSession raise
the client's own InvalidOptions (a HubRequestError with the code the hub would answer) naming the field,
with the pydantic ValidationError as its __cause__, before anything is sent; the same client then streams
to a real hub with the options corrected. A StartSession the caller builds is pydantic's to validate."""

from __future__ import annotations

from typing import Any

import pytest
from pydantic import ValidationError

from asrhub.client import (
    TRANSPORTS,
    HubRequestError,
    InvalidOptions,
    StartSession,
    StreamingClient,
    SyncClient,
)
from tests.client.test_client import WAV, client_for
from tests.support import HubProcess

BAD: list[tuple[Any, dict[str, Any], str, tuple[str, ...], str]] = [
    # (options, keyword arguments, code, fields at fault, words of the message)
    (None, {"language": "english"}, "invalid_command", ("language",), "language 'english' is not a BCP-47 tag"),
    ({"language": "english"}, {}, "invalid_command", ("language",), "language 'english' is not a BCP-47 tag"),
    ({"language": "en", "audio": {"encoding": "mp9"}}, {}, "unsupported_encoding", ("audio.encoding",), "mp9"),
    (StartSession(language="en"), {"vad": {"silence_ms": "long"}}, "invalid_command", ("vad.silence_ms",),
     "'vad.silence_ms'"),
    (None, {"languag": "en"}, "invalid_command", ("languag",), "unknown field 'languag'"),
    ({"interim_results": "yes"}, {}, "invalid_command", ("interim_results",), "'interim_results'"),
    (["en"], {}, "invalid_command", ("options",), "options must be a StartSession or a dict, not list"),
]


def _refused(info: pytest.ExceptionInfo[InvalidOptions], code: str, fields: tuple[str, ...], words: str) -> None:
    e = info.value
    assert isinstance(e, HubRequestError) and isinstance(e, ValueError)
    assert e.code == code and e.fields == fields and words in e.message, (e.code, e.fields, e.message)
    if fields != ("options",):
        assert isinstance(e.__cause__, ValidationError), repr(e.__cause__)


async def _first_event(client: StreamingClient, options: Any, fields: dict[str, Any]) -> None:
    async for _ in client.stream(WAV, options, **fields):
        raise AssertionError("a session started with options the client should have refused")


@pytest.mark.parametrize("transport", sorted(TRANSPORTS))
async def test_bad_options_raise_the_clients_typed_error_naming_the_field(hub: HubProcess, transport: str) -> None:
    client = client_for(transport, hub)
    try:
        for options, fields, code, at_fault, words in BAD:
            with pytest.raises(InvalidOptions) as info:
                await _first_event(client, options, fields)
            _refused(info, code, at_fault, words)
            with pytest.raises(InvalidOptions) as info:
                await client.session(options, **fields)
            _refused(info, code, at_fault, words)
        text = await client.transcribe(WAV, {"language": "en"}, realtime=None)  # the same client, corrected
        assert "hester" in text.lower(), text
    finally:
        await client.aclose()


def test_the_sync_client_raises_it_too(hub: HubProcess) -> None:
    with SyncClient(client_for("websocket", hub)) as client:
        with pytest.raises(InvalidOptions) as info:
            client.transcribe(WAV, language="english")
        _refused(info, "invalid_command", ("language",), "language 'english' is not a BCP-47 tag")
        assert "hester" in client.transcribe(WAV, language="en").lower()


def test_a_startsession_the_caller_builds_is_pydantics_to_validate() -> None:
    with pytest.raises(ValidationError):
        StartSession(language="english")
