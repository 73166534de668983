"""Provider failover (DESIGN §5): a session whose provider fails moves on without losing words.

Triggers: an exception for a final (the stream's `on_error`), a final not delivered within
`providers.timeout_s`, or the session's provider turning unhealthy/unavailable. The session then moves
to the next healthy provider in `providers.fallback` order, emits `provider.switched {from,to,reason}`,
and re-sends from its ring buffer the audio of every utterance still awaiting its final plus the open
one, so the new provider produces those finals. The failed provider is marked unhealthy (so other
sessions move too and new sessions are not given it) and probed in the background until it answers
again, then marked available.
"""

from __future__ import annotations

import asyncio
import logging
import time
from typing import TYPE_CHECKING

import numpy as np

from ..providers.base import Provider, ProviderStream, TranscribeOptions, check_request
from ..store.providers import actions as PA
from ..store.sessions import actions as A
from .audio import HUB_RATE, AudioChunk, ms_to_samples
from .errors import ErrorCode, HubError
from .events import ProviderSwitched

if TYPE_CHECKING:
    from .service import SessionService
    from .session import Session

log = logging.getLogger(__name__)

REPLAY_TAIL_MS = 200   # audio after an utterance's end that its final decode sees (as StreamAdapter does)
BAD = ("unhealthy", "unavailable")


class Failover:
    scan_interval_s = 0.25

    def __init__(self, service: SessionService) -> None:
        self.svc = service
        self._seen: dict[tuple[str, str], float] = {}   # (session, utterance) -> when first seen awaiting a final
        self._reported: set[tuple[str, str]] = set()
        self._probes: dict[str, asyncio.Task[None]] = {}
        self._task: asyncio.Task[None] | None = None
        self.switches = 0
        self.last_switch: dict[str, float] = {}          # session id -> perf_counter of its last switch

    # -- lifecycle ---------------------------------------------------------------------------
    async def start(self) -> None:
        self._task = asyncio.create_task(self._watch(), name="failover-watch")
        self.probe_unhealthy()

    def probe_unhealthy(self) -> None:
        """Probe every provider that is unhealthy now (e.g. a remote server down when the hub started)."""
        for p in self.svc.providers.providers.values():
            if p.health().status == "unhealthy" and p.name not in self._probes:
                self._probes[p.name] = asyncio.get_running_loop().create_task(self._probe(p), name=f"probe-{p.name}")

    async def close(self) -> None:
        tasks = [t for t in (self._task, *self._probes.values()) if t is not None]
        for t in tasks:
            t.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
        self._probes.clear()

    @property
    def timeout_s(self) -> float:
        return self.svc.config.providers.timeout_s

    # -- hooks called by the session service ----------------------------------------------------
    def on_stream_error(self, s: Session, exc: BaseException, utterance_id: str | None) -> bool:
        """True when the session moved to another provider (the failed utterance is replayed there)."""
        return self.switch(s, f"error: {exc}")

    async def drain(self, s: Session) -> bool:
        """Wait for every final asked for, following the session across switches. False on timeout
        with nowhere left to go (the caller reports it)."""
        while True:
            stream = s.stream
            if stream is None or s.ended:
                return True
            try:
                await asyncio.wait_for(self._settled(s, stream), self.timeout_s)
            except TimeoutError:
                if s.stream is stream and not self.switch(s, "timeout"):
                    return False
                continue
            if s.stream is stream:
                return True

    @staticmethod
    async def _settled(s: Session, stream: ProviderStream) -> None:
        """The stream has delivered what it was asked for, and no utterance still awaits a final
        (a provider that silently dropped one is a hung provider too)."""
        await stream.drain()
        while True:
            if not s.pending or s.stream is not stream or s.ended:
                return
            await asyncio.sleep(0.05)

    # -- the switch -------------------------------------------------------------------------------
    def candidates(self, s: Session, failed: Provider) -> list[Provider]:
        cfg = self.svc.providers.config
        order = list(cfg.fallback)
        if failed.name in order:
            i = order.index(failed.name)
            order = order[i + 1:] + order[:i]
        language = s.start.language
        out = []
        for name in order:
            p = self.svc.providers.providers.get(name)
            if p is None or p is failed or p.health().status != "available":
                continue
            try:
                check_request(p, language or p.language, s.start.task, s.start.prompt, s.start.hotwords)
            except HubError:
                continue
            out.append(p)
        return out

    def switch(self, s: Session, reason: str) -> bool:
        if s.ended or s.stream is None:
            return False
        old = s.provider
        candidates = self.candidates(s, old)
        if not candidates:  # nowhere to go: the caller reports the failure as before
            log.warning("session %s: provider %s failed (%s) and no healthy fallback is left", s.id, old.name, reason)
            return False
        self.mark_unhealthy(old, reason)
        for new in candidates:
            old_stream = s.stream
            s.provider = new
            try:
                stream = self.svc.new_stream(s)
            except Exception as e:
                log.warning("session %s: cannot open a stream on %s: %s", s.id, new.name, e)
                s.provider = old
                self.mark_unhealthy(new, f"error: {e}")
                continue
            s.stream = stream
            self.svc._spawn(s, old_stream.close())
            self.svc.dispatch(PA.failed(PA.Failed(old.name, s.id, None, reason)))
            self.svc.dispatch(PA.stream_closed(PA.StreamRef(old.name, s.id)))
            self.svc.dispatch(PA.stream_opened(PA.StreamRef(new.name, s.id)))
            ev = ProviderSwitched.model_validate({"session_id": s.id, "from": old.name, "to": new.name,
                                                  "reason": reason[:300]})
            self.svc.dispatch(A.provider_switched(A.ProviderSwitched(s.id, ev, new.name)))
            log.warning("session %s: provider %s -> %s (%s); replaying %d utterance(s)", s.id, old.name, new.name,
                        reason, len(s.pending) + (s.open_utterance is not None))
            self.switches += 1
            self.last_switch[s.id] = time.perf_counter()
            for key in [k for k in self._seen if k[0] == s.id]:
                del self._seen[key]
            self.replay(s)
            return True
        return False

    def replay(self, s: Session) -> None:
        """Re-send the audio of the utterances awaiting finals, then the open one, to the new stream."""
        stream, ring = s.stream, s.ring
        assert stream is not None
        tail = ms_to_samples(REPLAY_TAIL_MS)
        for uid, (start, end) in sorted(s.pending.items(), key=lambda kv: kv[1][0]):
            first = max(start, ring.start)
            stream.push(AudioChunk(ring.read(first, end + tail), first))
            stream.start_utterance(uid, start)
            stream.end_utterance(uid, end)
        if s.open_utterance is not None:
            uid, start = s.open_utterance
            first = max(start, ring.start)
            stream.push(AudioChunk(ring.read(first, ring.end), first))
            stream.start_utterance(uid, start)

    # -- health ---------------------------------------------------------------------------------
    def mark_unhealthy(self, p: Provider, reason: str) -> None:
        if p.health().status == "available":
            p.set_health("unhealthy", reason[:300])
            self.svc.dispatch(PA.status_changed(PA.StatusChanged(p.name, "unhealthy", reason[:300])))
            log.warning("provider %s marked unhealthy: %s", p.name, reason)
        if p.name not in self._probes and p.health().status == "unhealthy":
            self._probes[p.name] = asyncio.get_running_loop().create_task(self._probe(p), name=f"probe-{p.name}")

    async def _probe(self, p: Provider) -> None:
        try:
            while True:
                await asyncio.sleep(self.svc.config.providers.probe_interval_s)
                if p not in self.svc.providers.providers.values() or p.health().status != "unhealthy":
                    return  # retired by a reload, or recovered by itself
                try:
                    await asyncio.wait_for(self._check(p), self.timeout_s)
                except Exception as e:
                    log.info("provider %s still unhealthy: %s", p.name, e or type(e).__name__)
                    continue
                p.set_health("available")
                self.svc.dispatch(PA.status_changed(PA.StatusChanged(p.name, "available", None)))
                log.warning("provider %s is healthy again", p.name)
                return
        finally:
            self._probes.pop(p.name, None)

    @staticmethod
    async def _check(p: Provider) -> None:
        probe = getattr(p, "probe", None)
        if probe is not None:
            await probe()
            return
        await p.transcribe(np.zeros(HUB_RATE // 2, dtype=np.int16), TranscribeOptions(language=p.language))

    # -- timeouts and unhealthy providers ----------------------------------------------------------
    async def _watch(self) -> None:
        while True:
            await asyncio.sleep(self.scan_interval_s)
            try:
                self._scan()
            except Exception:
                log.exception("failover scan failed")

    def _scan(self) -> None:
        now = time.monotonic()
        live: set[tuple[str, str]] = set()
        for s in list(self.svc.sessions.values()):
            if s.ended or s.stream is None:
                continue
            h = s.provider.health()
            if h.status in BAD:
                if self.candidates(s, s.provider):
                    self.switch(s, f"unhealthy: {h.reason or h.status}")
                    continue
            for uid in list(s.pending):
                key = (s.id, uid)
                live.add(key)
                since = self._seen.setdefault(key, now)
                if now - since <= self.timeout_s or key in self._reported:
                    continue
                if self.switch(s, "timeout"):
                    break
                self._reported.add(key)
                self.svc.error(s.id, HubError(ErrorCode.provider_error, f"provider '{s.provider.name}' did not "
                                              f"deliver the final of {uid} in {self.timeout_s:.0f} s"))
        for key in [k for k in self._seen if k not in live]:
            del self._seen[key]
        self._reported &= live
        for sid in [k for k in self.last_switch if k not in self.svc.sessions]:
            del self.last_switch[sid]
