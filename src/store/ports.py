"""The narrow ports through which effects reach the data plane (DESIGN §2: effects are the only
place where control turns into I/O). The engine implements them; effects never see the service.

Each port method does its I/O and answers with the actions that report it; the effect returns those
actions to the store (it never dispatches).
"""

from __future__ import annotations

from collections.abc import Awaitable, Sequence
from typing import Any, Protocol

from pystorex import Action

from .base import EventPayload

Actions = Sequence[Action[Any]]


class StreamPort(Protocol):
    """Provider streams of sessions."""

    def open_stream(self, session_id: str) -> Actions:
        """Open the session's provider stream; answers `[Session] Started`."""

    def close_stream(self, session_id: str) -> Actions:
        """Close it (the session ended)."""

    def end_session(self, session_id: str, reason: str) -> Actions:
        """Release the session's data plane; answers `[Session] Ended` with its stats."""


class FailoverPort(Protocol):
    """Moving sessions between providers (DESIGN §5 switching and fallback)."""

    def provider_failed(self, session_id: str, utterance_id: str | None, provider: str, reason: str,
                        timeout: bool) -> Actions:
        """A session's provider failed it: switch it (and mark the provider unhealthy), or report the
        failure to the session when no healthy fallback is left."""

    def final_timed_out(self, session_id: str, utterance_id: str) -> Actions:
        """An utterance's final is `providers.timeout_s` late: `[Provider] Failed` when it is still due."""

    def provider_down(self, provider: str, reason: str) -> Actions:
        """The provider turned unhealthy or unavailable: switch its live sessions."""

    def probe(self, provider: str) -> Awaitable[Actions] | None:
        """Probe an unhealthy provider until it answers (None: a probe already runs); its actions
        report it available again."""


class RoutingPort(Protocol):
    """Routing by detected language (DESIGN §5): the language ID, then the move it calls for."""

    def detect(self, session_id: str, utterance_id: str, start: int, end: int) -> Awaitable[Actions] | None:
        """Identify the language of the session's audio [start, end); answers `[Session] Language Detected`
        (None: the session has ended)."""

    def route(self, session_id: str, utterance_id: str, language: str | None, probability: float | None) -> Actions:
        """The language ID answered for the utterance: move the session to the provider (and language) the
        routes give for it, or confirm where it is, or listen longer when the answer is unsure; the finals
        that waited for it are released or re-decoded."""


class ChannelPort(Protocol):
    """The session event channels."""

    def deliver(self, payload: EventPayload) -> Actions:
        """Put the payload's event in its session's channel; answers the error a failed delivery is
        (a client that does not read its events), none otherwise."""
