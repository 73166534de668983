"""Provider failover (DESIGN §5): a session whose provider fails moves on without losing words.

This is the FailoverPort behind the failover effects (store/providers/effects.py), which call it on
`[Provider] Failed` (an exception for a result; a final later than `providers.timeout_s`, reported
by the session's timer as `[Session] Final Timed Out`) and on `[Provider] Status Changed` to
unhealthy/unavailable. The session moves to the next healthy provider in `providers.fallback` order
(health read from the store), `provider.switched {from,to,reason}` goes out, and the audio of every
utterance still awaiting its final, plus the open one, is re-sent from the ring buffer so the new
provider produces those finals. The failed provider is marked unhealthy (other sessions move too, new
sessions are not given it) and probed until it answers again. With no healthy fallback the session
gets a `provider_error` instead, and the utterance is given up.

Which provider a session is on is its record's to say (the store's sessions slice): a move answers
`[Session] Provider Switched` first among its actions, so the record names the new provider before
anything else the move caused is reduced (a session already moved is never moved again for the same
provider's failure).
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Coroutine, Sequence
from typing import Any, Protocol

import numpy as np
from pystorex import Action

from ..core.audio import HUB_RATE, AudioChunk, ms_to_samples
from ..core.config import HubConfig
from ..core.errors import ErrorCode, HubError
from ..core.events import ErrorEvent, ProviderSwitched
from ..providers.base import Provider, ProviderStream, TranscribeOptions
from ..providers.checks import check_request
from ..providers.registry import ProviderSet
from ..store.providers import actions as PA
from ..store.providers.selectors import select_available, select_status
from ..store.sessions import actions as A
from ..store.sessions.selectors import select_is_live, select_live_on_provider, select_session
from .session import Session

log = logging.getLogger(__name__)

REPLAY_TAIL_MS = 200   # audio after an utterance's end that its final decode sees (as StreamAdapter does)
Actions = Sequence[Action[Any]]


class SessionHost(Protocol):
    """What failover needs of the session service."""

    config: HubConfig
    providers: ProviderSet

    @property
    def state(self) -> Any: ...

    def plane(self, session_id: str) -> Session | None: ...

    def new_stream(self, s: Session, provider: Provider) -> ProviderStream: ...

    def spawn(self, s: Session, coro: Coroutine[Any, Any, Any]) -> None: ...

    def arm_final_timer(self, s: Session, uid: str) -> None: ...


class Failover:
    def __init__(self, host: SessionHost) -> None:
        self.host = host
        self._probes: dict[str, asyncio.Task[Any]] = {}

    async def close(self) -> None:
        tasks = list(self._probes.values())
        for t in tasks:
            t.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
        self._probes.clear()

    @property
    def timeout_s(self) -> float:
        return self.host.config.providers.timeout_s

    # -- FailoverPort -------------------------------------------------------------------------
    def provider_failed(self, session_id: str, utterance_id: str | None, provider: str, reason: str,
                        timeout: bool) -> Actions:
        s = self._live(session_id)
        if s is None or self._provider(s) != provider:
            return ()  # ended, or moved on already (its replay re-decodes the utterance)
        why = "timeout" if timeout else reason
        moved, out = self.switch(s, provider, why)
        if moved:
            return out
        # nowhere to go: the failure is the session's to hear about; the utterance is given up
        if utterance_id is not None:
            s.final_arrived(utterance_id)
        if timeout:
            message = (f"provider '{provider}' did not deliver the final of {utterance_id} in "
                       f"{self.timeout_s:.0f} s")
        else:
            message = f"provider '{provider}' failed: {reason.removeprefix('error: ')}"
        ev = ErrorEvent(session_id=s.id, code=ErrorCode.provider_error.value, message=message, fatal=False)
        return [*out, A.error_raised(A.ErrorRaised(s.id, ev, ev.code, False))]

    def final_timed_out(self, session_id: str, utterance_id: str) -> Actions:
        s = self._live(session_id)
        if s is None or utterance_id not in s.pending:
            return ()
        return [PA.failed(PA.Failed(self._provider(s), s.id, utterance_id, "timeout", timeout=True))]

    def provider_down(self, provider: str, reason: str) -> Actions:
        out: list[Action[Any]] = []
        for sid in select_live_on_provider(self.host.state, provider):
            s = self.host.plane(sid)
            if s is not None:
                out += self.switch(s, provider, reason)[1]
        return out

    def probe(self, provider: str) -> asyncio.Task[Actions] | None:
        p = self.host.providers.providers.get(provider)
        if p is None or provider in self._probes:
            return None
        task = asyncio.get_running_loop().create_task(self._probe(p), name=f"probe-{provider}")
        self._probes[provider] = task
        task.add_done_callback(lambda t: self._probes.pop(provider, None) if self._probes.get(provider) is t else None)
        return task

    # -- the switch -------------------------------------------------------------------------------
    def candidates(self, s: Session, failed: str) -> list[Provider]:
        cfg = self.host.providers.config
        order = list(cfg.fallback)
        if failed in order:
            i = order.index(failed)
            order = order[i + 1:] + order[:i]
        language = s.start.language
        rec = select_session(self.host.state, s.id)
        if rec is not None and rec.detect and rec.language:
            language = s.locale  # routed by its detected language: a fallback must know the one it runs in
        out = []
        for name in order:
            p = self.host.providers.providers.get(name)
            if p is None or name == failed or not select_available(self.host.state, name):
                continue
            try:
                check_request(p, language or p.language, s.start.task, s.start.prompt, s.start.hotwords)
            except HubError:
                continue
            out.append(p)
        return out

    def switch(self, s: Session, old: str, reason: str) -> tuple[bool, Actions]:
        """Move the session off provider `old` (the one its record names) to the first candidate that opens
        a stream: (moved, the actions that report it, `[Session] Provider Switched` first). Not moved when
        no healthy fallback is left."""
        candidates = self.candidates(s, old)
        if s.stream is None or not candidates:
            log.warning("session %s: provider %s failed (%s) and no healthy fallback is left", s.id, old, reason)
            return False, ()
        out: list[Action[Any]] = []
        unhealthy: list[Action[Any]] = []
        if select_available(self.host.state, old):
            unhealthy.append(PA.status_changed(PA.StatusChanged(old, "unhealthy", reason[:300])))
            log.warning("provider %s marked unhealthy: %s", old, reason)
        for new in candidates:
            try:
                self.move(s, new)
            except Exception as e:
                log.warning("session %s: cannot open a stream on %s: %s", s.id, new.name, e)
                unhealthy.append(PA.status_changed(PA.StatusChanged(new.name, "unhealthy", f"error: {e}"[:300])))
                continue
            ev = ProviderSwitched.model_validate({"session_id": s.id, "from": old, "to": new.name,
                                                  "reason": reason[:300]})
            out += [A.provider_switched(A.ProviderSwitched(s.id, ev, new.name)), *unhealthy,
                    PA.failed(PA.Failed(old, None, None, reason))]
            log.warning("session %s: provider %s -> %s (%s); replaying %d utterance(s)", s.id, old, new.name,
                        reason, len(s.pending) + (s.open_utterance is not None))
            return True, out
        return False, unhealthy

    def move(self, s: Session, new: Provider) -> None:
        """Put the session on a new stream of `new` (in the language the session now runs in), close the
        old stream and replay the utterances it owed from the ring buffer. Raises (and leaves the session
        as it was) when the stream cannot be opened. Failover and routing by language both move this way;
        the action each answers tells the store (the session's record) where it is now."""
        old_stream = s.stream
        assert old_stream is not None
        s.stream = self.host.new_stream(s, new)
        s.held.clear()  # finals the old stream gave that were waiting: the replay decodes them again
        self.host.spawn(s, old_stream.close())
        self.replay(s)

    def replay(self, s: Session) -> None:
        """Re-send the audio of the utterances awaiting finals, then the open one, to the new stream;
        each replayed utterance gets a fresh deadline for its final."""
        stream, ring = s.stream, s.ring
        assert stream is not None
        tail = ms_to_samples(REPLAY_TAIL_MS)
        for uid, (start, end) in sorted(s.pending.items(), key=lambda kv: kv[1][0]):
            first = max(start, ring.start)
            stream.push(AudioChunk(ring.read(first, end + tail), first))
            stream.start_utterance(uid, start, s.promised.get(uid, ""))
            stream.end_utterance(uid, end)
            self.host.arm_final_timer(s, uid)
        if s.open_utterance is not None:
            uid, start = s.open_utterance
            first = max(start, ring.start)
            stream.push(AudioChunk(ring.read(first, ring.end), first))
            stream.start_utterance(uid, start, s.promised.get(uid, ""))

    def _live(self, session_id: str) -> Session | None:
        s = self.host.plane(session_id)
        return s if s is not None and select_is_live(self.host.state, session_id) else None

    def _provider(self, s: Session) -> str:
        """The provider the session's record names (it is live)."""
        rec = select_session(self.host.state, s.id)
        assert rec is not None
        return rec.provider

    # -- health ---------------------------------------------------------------------------------
    async def _probe(self, p: Provider) -> Actions:
        """Try the provider every `probe_interval_s` until it answers; then it is available again."""
        while True:
            await asyncio.sleep(self.host.config.providers.probe_interval_s)
            if self.host.providers.providers.get(p.name) is not p \
                    or select_status(self.host.state, p.name)[0] != "unhealthy":
                return ()  # retired by a reload, or recovered otherwise
            try:
                await asyncio.wait_for(self._check(p), self.timeout_s)
            except Exception as e:
                log.info("provider %s still unhealthy: %s", p.name, e or type(e).__name__)
                continue
            log.warning("provider %s is healthy again", p.name)
            return [PA.status_changed(PA.StatusChanged(p.name, "available", None))]

    @staticmethod
    async def _check(p: Provider) -> None:
        probe = getattr(p, "probe", None)
        if probe is not None:
            await probe()
            return
        await p.transcribe(np.zeros(HUB_RATE // 2, dtype=np.int16), TranscribeOptions(language=p.language))
