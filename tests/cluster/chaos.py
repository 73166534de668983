"""Chaos under load (issue 21 item 4, DESIGN §8): three hub nodes behind nginx (deploy/nginx.conf, rendered
for loopback), Redis behind Sentinel (a primary, a replica, three `redis-sentinel`), `asrhub.client` talkers
on all four transports streaming real speech at real-time pace through nginx, while a node is `kill -9`'d
and restarted every so often and the Redis primary is killed once, midway. Used by
tests/cluster/test_chaos.py (2 minutes) and `python -m bench.bench_cluster chaos` (10 minutes).

What each talker says: a cycle of English clips (`CYCLE`), each followed by `gap_s` of silence, looped
from its own place in the cycle (talker i starts at clip i), whole clips only, up to `seconds` of audio.

**Words lost** (`score`): the talker's finals, in seq order, are aligned with the words of every clip it
said, in order, as one text (Levenshtein over characters, after `tests.support.normalise`), so a final
counts by its words wherever its timestamps fall; each lost word belongs to the clip it is in. Each
clip's reference is a single-node decode of the same clip: a hub of its own,
no Redis, no kill, the cycle streamed at real-time pace during the chaos, after the cycle's last clip so
each clip is decoded after the same clip as in a talker's session. A reference word with no counterpart
(a deletion) is a word lost; a word decoded otherwise (a substitution) or added (an insertion) is not
lost but counted as changed. The allowance: where a takeover cut the session, the client sends its held
audio again from the last final's `end_ms` and the open utterance is decoded again, alone, without the
earlier finals' context, so its first word may come out otherwise or not at all: the clip holding the
start of the replayed audio (the first clip ending after `audio_from_ms`) may lose one word per takeover
there. Nothing else is allowed: a bridge node's death (no takeover) has no allowance.

**Kill → first event after takeover**: for each session whose owner (`sess:{id}` in Redis) was the killed
node, from the `kill -9` to its client receiving `session.migrated` (the first event the new owner writes),
both on this process's monotonic clock; also from the killed process's exit (reaped), since on a loaded
machine a `kill -9`'d hub of ~600 MB took up to seconds to exit, and a client connected to it sees its
connection close only then.

Kills are paced by the talkers' audio clock (`kill_every_s`), each waiting for the node that owns the most
sessions to have one of them in an open utterance (a `speech.started` after its last final) and for every
node to be up; the failover waits for every node to be up. Sessions ended otherwise than by the client's
`stop`, a `ResumeFailed`, a fatal error event: ended abnormally.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import signal
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import jiwer
import numpy as np

from asrhub.client import (
    ErrorEvent,
    Event,
    GrpcClient,
    LiveSession,
    SessionEnded,
    SessionMigrated,
    SocketIOClient,
    SpeechStarted,
    SseClient,
    StartSession,
    StreamingClient,
    TranscriptFinal,
    WebSocketClient,
)
from tests.cluster.nodes import CHUNK, PCM, Cluster
from tests.cluster.sentinel import Sentinels
from tests.cluster.test_nginx import NGINX, Nginx
from tests.support import HubProcess, base_config, clip, load_pcm16, normalise

#: the clips every talker loops through (16 and 22.05 kHz, two speakers' books and LJSpeech), ~47 s
CYCLE = ("en_libri_1221-135766-0002", "en_libri_1089-134691-0001", "en_ljspeech_LJ001-0005",
         "en_libri_1995-1837-0001", "en_ljspeech_LJ001-0001", "en_libri_1089-134686-0000")
TRANSPORTS = ("websocket", "sse", "socketio", "grpc")
RATE = 16000


def load() -> float:
    return os.getloadavg()[0]


@dataclass(frozen=True)
class Spoken:
    """One clip said in a session: CYCLE[clip] from `start_ms` to `end_ms`, silence after it up to `until_ms`."""
    clip: int
    start_ms: int
    end_ms: int
    until_ms: int


def script(first: int, seconds: float, gap_s: float) -> tuple[bytes, list[Spoken]]:
    """The cycle from clip `first`, looped, whole clips each followed by `gap_s` of silence, until at least
    `seconds` of audio: 16 kHz pcm_s16le and what was said where."""
    pcm = [load_pcm16(clip(name).path) for name in CYCLE]
    gap = np.zeros(int(RATE * gap_s), dtype=np.int16)
    parts: list[np.ndarray] = []
    said: list[Spoken] = []
    at, k = 0, first
    while at < seconds * RATE or not parts:
        c = pcm[k % len(CYCLE)]
        said.append(Spoken(k % len(CYCLE), at * 1000 // RATE, (at + len(c)) * 1000 // RATE,
                           (at + len(c) + len(gap)) * 1000 // RATE))
        parts += [c, gap]
        at += len(c) + len(gap)
        k += 1
    return np.concatenate(parts).astype(np.int16).tobytes(), said


def place(finals: list[TranscriptFinal], said: list[Spoken]) -> list[list[str]]:
    """Each final's text put to the clip whose span (with its silence) it overlaps most."""
    texts: list[list[str]] = [[] for _ in said]
    for f in finals:
        best = max(range(len(said)), key=lambda i: (min(f.end_ms, said[i].until_ms) - max(f.start_ms, said[i].start_ms),
                                                     -abs(f.start_ms - said[i].start_ms)))
        texts[best].append(f.text)
    return texts


@dataclass
class Score:
    """Words of a talker's finals against the single-node decode of the same clips."""
    words: int = 0      # reference words
    lost: int = 0       # lost (see compare), beyond the allowance
    allowed: int = 0    # lost, within the allowance at a replayed utterance's cut
    changed: int = 0    # decoded otherwise: substituted, inserted, or deleted without being lost
    notes: list[str] = field(default_factory=list)

    def add(self, other: Score) -> None:
        self.words += other.words
        self.lost += other.lost
        self.allowed += other.allowed
        self.changed += other.changed
        self.notes += other.notes


def lost_words(ref: str, hyp: str) -> tuple[int, list[int], int]:
    """`compare`, with the indexes of the reference words lost (in `normalise(ref).split()`)."""
    r, h = normalise(ref), normalise(hyp)
    words = r.split()
    if not words:
        return 0, [], len(h.split())
    if not h:
        return len(words), list(range(len(words))), 0
    deleted = bytearray(len(r))
    for chunk in jiwer.process_characters(r, h).alignments[0]:
        if chunk.type == "delete":
            deleted[chunk.ref_start_idx:chunk.ref_end_idx] = b"\x01" * (chunk.ref_end_idx - chunk.ref_start_idx)
    lost: list[int] = []
    at = 0
    for i, w in enumerate(words):
        at = r.index(w, at)
        if 2 * sum(deleted[at:at + len(w)]) > len(w):
            lost.append(i)
        at += len(w)
    o = jiwer.process_words(r, h)
    return len(words), lost, max(0, o.substitutions + o.insertions + o.deletions - len(lost))


def compare(ref: str, hyp: str) -> tuple[int, int, int]:
    """(reference words, words lost, words decoded otherwise) after normalisation. A reference word is lost
    when most of its letters are deleted in a character alignment with the hypothesis: a word the decoder
    spelt otherwise or merged with its neighbour ("fat and" -> "fattened") is not lost, a word whose audio
    never reached the recogniser is."""
    words, lost, changed = lost_words(ref, hyp)
    return words, len(lost), changed


def replayed(events: list[Event], said: list[Spoken]) -> list[int]:
    """For each takeover (`session.migrated`), the clip whose utterance the new node decoded again: the
    clip in whose span (its silence with it) the first final after the takeover ends. Not the clip
    `audio_from_ms` falls in: that is the end of the last final, which can lie before the end of its own
    clip's speech (the decoder's end of speech is not the clip's), and the 10-minute run at d65b2e6 gave
    the allowance there, to a clip with nothing replayed. No final after it: the first clip whose speech
    ends after `audio_from_ms`."""
    out: list[int] = []
    for i, ev in enumerate(events):
        if not isinstance(ev, SessionMigrated):
            continue
        nxt = next((e for e in events[i + 1:] if isinstance(e, TranscriptFinal)), None)
        if nxt is not None:
            k = next((j for j, s in enumerate(said) if s.start_ms < nxt.end_ms <= s.until_ms), -1)
        else:
            k = next((j for j, s in enumerate(said) if s.end_ms > ev.audio_from_ms), -1)
        out.append(k)
    return out


def score(name: str, said: list[Spoken], events: list[Event], reference: dict[int, str]) -> Score:
    """A session's finals (in `events`), in order, against the reference of every clip said (`said`), in
    order: one alignment over the whole session, so a final is judged by its words, not by where its
    timestamps put it (after a takeover a final can carry words its span does not cover: the text the
    partials before it had promised, on a short segment the replayed audio gave; placed by time it counted
    as lost from its clip: 17 of the 20 words the 24-talker run at 9353f4f called lost).
    A takeover allows one word lost in the clip it replayed (`replayed`: the utterance open at the kill,
    decoded again from the held audio); the words lost beyond that are noted with their clip."""
    finals = [e for e in events if isinstance(e, TranscriptFinal)]
    cuts = [e.audio_from_ms for e in events if isinstance(e, SessionMigrated)]
    replayed_clips = replayed(events, said)
    refs = [normalise(reference[spoken.clip]).split() for spoken in said]
    hyp = " ".join(f.text for f in finals)
    out = Score()
    words, lost_at, changed = lost_words(" ".join(w for ws in refs for w in ws), hyp)
    out.words, out.changed = words, changed
    clip_of = [k for k, ws in enumerate(refs) for _ in ws]
    flat = [w for ws in refs for w in ws]
    by_clip: dict[int, list[int]] = {}
    for i in lost_at:
        by_clip.setdefault(clip_of[i], []).append(i)
    texts = place(finals, said)
    for k, idx in sorted(by_clip.items()):
        allowance = replayed_clips.count(k)
        out.allowed += min(len(idx), allowance)
        if len(idx) > allowance:
            out.lost += len(idx) - allowance
            spoken = said[k]
            out.notes.append(f"{name} clip {k} ({spoken.start_ms}-{spoken.end_ms} ms, cuts {cuts}): lost "
                             f"{[flat[i] for i in idx]} of {reference[spoken.clip]!r}; finals placed there by "
                             f"time: {' '.join(texts[k])!r}")
    return out


class Talker:
    """One `asrhub.client` session through nginx, streaming its script at real-time pace."""

    def __init__(self, index: int, transport: str, front: Nginx, seconds: float, gap_s: float,
                 tick: Callable[[], None]) -> None:
        self.index = index
        self.transport = transport
        self.pcm, self.said = script(index % len(CYCLE), seconds, gap_s)
        kw: dict[str, Any] = {"reconnect_delay_s": 0.1, "max_reconnects": 30, "start_timeout_s": 60.0}
        self.client: StreamingClient = (GrpcClient(f"127.0.0.1:{front.grpc_port}", **kw) if transport == "grpc" else
                                        {"websocket": WebSocketClient, "sse": SseClient,
                                         "socketio": SocketIOClient}[transport](front.http, **kw))
        self.session: LiveSession | None = None
        self.events: list[Event] = []
        self.at: list[float] = []
        self.failure: BaseException | None = None
        self.sent_ms = 0
        self._tick = tick
        self._reading: asyncio.Task[None] | None = None

    @property
    def name(self) -> str:
        return f"{self.transport}#{self.index}"

    @property
    def session_id(self) -> str:
        return (self.session.session_id if self.session else None) or ""

    @property
    def open_utterance(self) -> bool:
        """A speech.started after the last final: the node computing it would lose it without a takeover."""
        for ev in reversed(self.events):
            if isinstance(ev, TranscriptFinal):
                return False
            if isinstance(ev, SpeechStarted):
                return True
        return False

    async def start(self) -> None:
        self.session = await self.client.session(audio=PCM)
        self._reading = asyncio.create_task(self._read(self.session))

    async def _read(self, session: LiveSession) -> None:
        try:
            async for ev in session:
                self.events.append(ev)
                self.at.append(time.monotonic())
                self._tick()
        except Exception as e:  # noqa: BLE001 (a session that fails is a finding, reported)
            self.failure = e
            self._tick()

    async def talk(self, t0: float) -> None:
        """The script at real-time pace from `t0` (a send held up by a reconnect catches up afterwards, as
        a microphone's buffer would), then `stop`."""
        s = self.session
        assert s is not None
        try:
            for i in range(0, len(self.pcm), CHUNK):
                delay = t0 + i / 32000 - time.monotonic()
                if delay > 0:
                    await asyncio.sleep(delay)
                await s.send(self.pcm[i:i + CHUNK])
                self.sent_ms = (i + CHUNK) * 1000 // 32000
            await s.stop()
        except Exception as e:  # noqa: BLE001
            self.failure = self.failure or e

    async def finish(self, timeout_s: float) -> None:
        assert self._reading is not None and self.session is not None
        try:
            await asyncio.wait_for(asyncio.shield(self._reading), timeout_s)
        except TimeoutError:
            self.failure = self.failure or TimeoutError(f"no session.ended {timeout_s:.0f} s after the stop")
        await self.session.close()
        await self.client.aclose()

    # -- findings ------------------------------------------------------------------------------------
    def abnormal(self) -> str | None:
        """Why the session did not end as the client asked, if it did not."""
        if self.failure is not None:
            return f"{type(self.failure).__name__}: {self.failure}"
        fatal = [e for e in self.events if isinstance(e, ErrorEvent) and e.fatal]
        if fatal:
            return f"error {fatal[0].code}: {fatal[0].message}"
        end = self.events[-1] if self.events else None
        if not isinstance(end, SessionEnded) or end.reason != "stop":
            return f"last event {end.type if end else None}"
        return None

    def seq_problems(self, logged: list[tuple[int, str]]) -> list[str]:
        """Events the application got out of 1..N (a duplicate, a gap, out of order), and seqs whose event
        differs from the session's log in Redis."""
        seqs = [e.seq for e in self.events]
        out = []
        if seqs != list(range(1, len(seqs) + 1)):
            bad = next(i for i, s in enumerate(seqs) if s != i + 1)
            around = [(e.seq, e.type, getattr(e, "code", ""), getattr(e, "message", ""))
                      for e in self.events[max(0, bad - 2):bad + 3]]  # (what a seq 0 is: e.g. an HTTP refusal)
            out.append(f"{self.name}: seqs not 1..N from position {bad}: {around}")
        mine = {e.seq: e.type for e in self.events}
        differ = [s for s, t in logged if s in mine and mine[s] != t]
        if differ:
            out.append(f"{self.name}: seqs {differ[:5]} differ from the log")
        return out

    def migrations(self) -> list[tuple[SessionMigrated, float]]:
        return [(e, t) for e, t in zip(self.events, self.at, strict=True) if isinstance(e, SessionMigrated)]

    def score(self, reference: dict[int, str]) -> Score:
        return score(self.name, self.said, self.events, reference)


async def single_node_reference(hub: HubProcess, gap_s: float) -> dict[int, str]:
    """Each clip of the cycle as one hub alone decodes it (`hub`: no Redis, no kill): the cycle after its own
    last clip, at real-time pace; the text of each clip's finals."""
    pcm, said = script(len(CYCLE) - 1, sum(clip(n).seconds + gap_s for n in CYCLE) + 1, gap_s)
    client = WebSocketClient(hub.http)
    finals = [ev async for ev in client.stream(pcm, StartSession(audio=PCM), realtime=1.0)
              if isinstance(ev, TranscriptFinal)]
    texts = place(finals, said)
    out: dict[int, str] = {}
    for spoken, got in zip(said[1:], texts[1:], strict=False):  # each after the clip before it in the cycle
        out.setdefault(spoken.clip, " ".join(got))
    assert set(out) == set(range(len(CYCLE))), out
    return out


@dataclass
class Kill:
    node: str
    at: float                  # time.monotonic() of the kill
    load: float
    owned: list[Talker]        # sessions the node owned then
    dead_s: float = 0.0        # the kill to the process's exit (its sockets closed: its clients see it gone)
    restart_s: float = 0.0     # the kill to the node answering /readyz again
    lease_left_ms: int | None = None  # PTTL node:{node} just after the signal (None: not read, or no lease)

    @property
    def expiry(self) -> float | None:
        """When the node's lease ran out (time.monotonic()): no node may take its sessions over before.
        The kill falls anywhere in the lease's renewal cycle, so this is 2-3 s after it with a 3 s lease,
        whatever the code does."""
        return None if self.lease_left_ms is None else self.at + self.lease_left_ms / 1000


@dataclass
class Failover:
    at: float
    load: float
    switch_s: float = 0.0      # the kill of the primary to +switch-master


@dataclass
class Report:
    talkers: list[Talker]
    kills: list[Kill]
    failovers: list[Failover]
    reference: dict[int, str]
    logs: dict[str, list[tuple[int, str]]]
    seconds: float
    wall_s: float
    load_start: float
    load_end: float
    lease_ms: int

    @property
    def abnormal(self) -> list[str]:
        return [f"{t.name}: {why}" for t in self.talkers if (why := t.abnormal()) is not None]

    @property
    def seq_problems(self) -> list[str]:
        return [p for t in self.talkers for p in t.seq_problems(self.logs.get(t.session_id, []))]

    @property
    def words(self) -> Score:
        total = Score()
        for t in self.talkers:
            total.add(t.score(self.reference))
        return total

    @property
    def takeovers(self) -> int:
        return sum(len(t.migrations()) for t in self.talkers)

    def takeover_times(self) -> tuple[list[float], list[float], list[str]]:
        """Kill → session.migrated at the client, for each session the killed node owned: from the signal,
        and from the process's exit (on a loaded machine a `kill -9`'d hub takes a while to exit, and until
        it has, the sockets of its clients stay open); and the sessions it owned that no node took over."""
        times, after_exit, missing = [], [], []
        for k in self.kills:
            for t in k.owned:
                moved = [at for m, at in t.migrations() if m.from_node == k.node and at >= k.at]
                if moved:
                    times.append(moved[0] - k.at)
                    after_exit.append(max(0.0, moved[0] - k.at - k.dead_s))
                elif not (t.events and isinstance(t.events[-1], SessionEnded) and
                          t.at[-1] < k.at + self.lease_ms / 1000):
                    missing.append(f"{t.name} (owned by {k.node})")
        return times, after_exit, missing

    def after_expiry(self) -> list[float]:
        """The killed node's lease expiry → session.migrated at the client, for each session it owned that
        was taken over (the part of kill → event the hub's code decides: the kill's phase in the lease's
        renewal cycle taken out)."""
        out = []
        for k in self.kills:
            if k.expiry is None:
                continue
            for t in k.owned:
                moved = [at for m, at in t.migrations() if m.from_node == k.node and at >= k.at]
                if moved:
                    out.append(moved[0] - k.expiry)
        return out

    def dump(self, path: Path) -> None:
        """Every talker's events with their arrival (monotonic s), one JSON line each, and the kills."""
        import json
        with open(path, "w") as f:
            for k in self.kills:
                f.write(json.dumps({"kill": k.node, "at": k.at, "lease_left_ms": k.lease_left_ms,
                                    "owned": [t.name for t in k.owned]}) + "\n")
            for fo in self.failovers:
                f.write(json.dumps({"failover": True, "at": fo.at}) + "\n")
            for t in self.talkers:
                for ev, at in zip(t.events, t.at, strict=True):
                    f.write(json.dumps({"talker": t.name, "at": at, **ev.to_dict()}) + "\n")

    def table(self) -> str:
        from bench.common import pct
        w = self.words
        times, after_exit, missing = self.takeover_times()
        expiry = self.after_expiry()
        transports = ", ".join(f"{n} {tr}" for tr in TRANSPORTS if (n := sum(t.transport == tr for t in self.talkers)))
        rows = [
            ("talkers (transports)", f"{len(self.talkers)} ({transports}), {self.seconds:.0f} s of speech each"),
            ("node kills (`kill -9`, restarted)", f"{len(self.kills)}"),
            ("Redis primary failovers (`kill -9`)", f"{len(self.failovers)}"
             + (f", kill → +switch-master {', '.join(f'{f.switch_s:.2f}' for f in self.failovers)} s"
                if self.failovers else "")),
            ("takeovers (`session.migrated` at the clients)", f"{self.takeovers}"),
            ("sessions ended abnormally", f"{len(self.abnormal)}"),
            ("words lost (beyond the allowance)", f"{w.lost} of {w.words}"
             f" (allowed at a replayed utterance's cut: {w.allowed}; decoded otherwise: {w.changed})"),
            ("duplicate, missing or out-of-order seqs", f"{len(self.seq_problems)}"),
            ("kill → first event after takeover (`session.migrated` at the client) p50 / p95 / max (s)",
             f"{pct(times, 50):.2f} / {pct(times, 95):.2f} / {max(times, default=float('nan')):.2f} "
             f"(lease {self.lease_ms} ms, {len(times)} sessions)"),
            ("lease expiry → first event after takeover (the kill's lease phase taken out) p50 / p95 / max (s)",
             f"{pct(expiry, 50):.2f} / {pct(expiry, 95):.2f} / {max(expiry, default=float('nan')):.2f} "
             f"({len(expiry)} sessions)"),
            ("lease left at each kill (PTTL node:{victim}, ms)",
             ", ".join("-" if k.lease_left_ms is None else str(k.lease_left_ms) for k in self.kills)),
            ("the same from the killed process's exit p50 / p95 / max (s)",
             f"{pct(after_exit, 50):.2f} / {pct(after_exit, 95):.2f} / {max(after_exit, default=float('nan')):.2f}"),
            ("`kill -9` → the process's exit, each kill (s)", ", ".join(f"{k.dead_s:.2f}" for k in self.kills)),
            ("sessions of a killed node not taken over", f"{len(missing)}"),
            ("node restart (kill → /readyz) max (s)", f"{max((k.restart_s for k in self.kills), default=0):.1f}"),
            ("load average (1 min) start / kills / end",
             f"{self.load_start:.1f} / {', '.join(f'{k.load:.1f}' for k in self.kills)} / {self.load_end:.1f}"),
            ("wall time (s)", f"{self.wall_s:.0f}"),
        ]
        lines = ["| figure | measured |", "|---|---|", *(f"| {a} | {b} |" for a, b in rows)]
        details = [*self.abnormal, *self.seq_problems, *missing, *w.notes]
        return "\n".join(lines + ([""] + [f"- {d}" for d in details[:40]] if details else []))


class Chaos:
    """The deployment (Sentinel Redis, `nodes` hubs, nginx) and the run."""

    def __init__(self, tmp: Path, *, nodes: int = 3, lease_ms: int = 3000, bridge_block_ms: int | None = None) -> None:
        if NGINX is None:
            raise RuntimeError("no nginx binary (scripts/bootstrap-test.sh installs Debian's nginx)")
        self.tmp = tmp
        self.lease_ms = lease_ms
        self.sentinels = Sentinels(tmp).ready()
        self.cluster: Cluster | None = None
        self.front: Nginx | None = None
        (tmp / "single").mkdir()
        self.single = HubProcess(base_config(), tmp / "single")  # the reference decode's hub: no Redis
        try:
            self.single.start()
            self.cluster = Cluster(tmp, nodes, lease_ms=lease_ms, bridge_block_ms=bridge_block_ms,
                                   redis=self.sentinels, env={"ASRHUB_SERVER__SHUTDOWN_GRACE_S": "2"})
            self.front = Nginx(tmp / "nginx", self.cluster.nodes).start()
        except BaseException:
            self.stop()
            raise
        self._tick = asyncio.Event()

    def stop(self) -> None:
        self.single.stop()
        if self.front is not None:
            self.front.stop()
        if self.cluster is not None:
            self.cluster.stop()  # the nodes, then the Sentinel deployment
        else:
            self.sentinels.stop()

    def _ticked(self) -> None:
        self._tick.set()

    async def _next_event(self) -> None:
        self._tick.clear()
        await self._tick.wait()

    def owners(self, talkers: list[Talker]) -> dict[str, list[Talker]]:
        r = self.sentinels.client()
        out: dict[str, list[Talker]] = {}
        for t in talkers:
            if t.session_id and not (t.events and isinstance(t.events[-1], SessionEnded)):
                owner = r.hget(f"sess:{t.session_id}", "owner")
                if owner:
                    out.setdefault(owner.decode(), []).append(t)
        return out

    async def _kill_a_node(self, talkers: list[Talker], kills: list[Kill]) -> None:
        """Kill -9 the node owning the most sessions once one of them is in an open utterance; restart it."""
        assert self.cluster is not None
        while True:
            owned = self.owners(talkers)
            ranked = sorted(owned.items(), key=lambda kv: -len(kv[1]))
            victim = next((n for n, ts in ranked if any(t.open_utterance for t in ts)), None)
            if victim is not None:
                break
            await self._next_event()
        node = self.cluster.nodes[int(victim.removeprefix("node"))]
        assert node.proc is not None
        kill = Kill(victim, time.monotonic(), load(), owned[victim])
        node.proc.send_signal(signal.SIGKILL)
        kills.append(kill)
        kill.lease_left_ms = self._lease_left(victim)
        await asyncio.to_thread(node.proc.wait)
        kill.dead_s = time.monotonic() - kill.at
        await asyncio.to_thread(node.stop)
        await asyncio.to_thread(node.start)
        kill.restart_s = time.monotonic() - kill.at

    def _lease_left(self, node: str) -> int | None:
        """PTTL of the node's lease, read just after its kill (one Redis call; None: no lease, or Redis
        did not answer). The lease cannot be renewed after the signal, so it ends that much later."""
        import redis
        try:
            left = int(self.sentinels.client().pttl(f"node:{node}"))
        except redis.RedisError:
            return None
        return left if left >= 0 else None

    async def _fail_the_primary(self, failovers: list[Failover]) -> None:
        port = self.sentinels.master_port()
        watch = await asyncio.to_thread(self.sentinels.switch_watch)
        proc = self.sentinels.servers[port].proc
        assert proc is not None
        f = Failover(time.monotonic(), load())
        proc.send_signal(signal.SIGKILL)
        failovers.append(f)
        await asyncio.to_thread(Sentinels.switched, watch, 60.0)
        f.switch_s = time.monotonic() - f.at

    async def _schedule(self, talkers: list[Talker], t0: float, seconds: float, kill_every_s: float,
                        failover: bool, kills: list[Kill], failovers: list[Failover]) -> None:
        """Kill k at k * kill_every_s of audio while the talkers have `kill_every_s / 3` left to say; the
        failover halfway between the middle kills."""
        times = [k * kill_every_s for k in range(1, int(seconds // kill_every_s) + 1)
                 if k * kill_every_s <= seconds - kill_every_s / 3]
        plan: list[tuple[float, str]] = [(s, "kill") for s in times]
        if failover:
            mid = times[len(times) // 2 - 1] + kill_every_s / 2 if len(times) >= 2 else seconds / 2
            plan.append((mid, "failover"))
        for at, what in sorted(plan):
            delay = t0 + at - time.monotonic()
            if delay > 0:
                await asyncio.sleep(delay)  # the workload's schedule (audio time), not a synchronisation
            if what == "kill":
                await self._kill_a_node(talkers, kills)
            else:
                await self._fail_the_primary(failovers)

    async def run(self, clients: int, seconds: float, kill_every_s: float, *, failover: bool = True,
                  gap_s: float = 1.0, drain_s: float = 300.0,
                  progress: Callable[[str], None] | None = None) -> Report:
        assert self.front is not None
        say = progress or (lambda _: None)
        started = time.monotonic()
        load_start = load()
        reference = asyncio.create_task(single_node_reference(self.single, gap_s))
        talkers = [Talker(i, TRANSPORTS[i % len(TRANSPORTS)], self.front, seconds, gap_s, self._ticked)
                   for i in range(clients)]
        await asyncio.gather(*(t.start() for t in talkers))
        say(f"{clients} sessions started; load {load():.1f}")
        t0 = time.monotonic()
        kills: list[Kill] = []
        failovers: list[Failover] = []
        chaos = asyncio.create_task(self._schedule(talkers, t0, seconds, kill_every_s, failover, kills, failovers))
        try:
            await asyncio.gather(*(t.talk(t0) for t in talkers))
            say(f"talkers done; {len(kills)} kills, {len(failovers)} failovers; load {load():.1f}")
            await chaos
            await asyncio.gather(*(t.finish(drain_s) for t in talkers))
            ref = await reference
        finally:
            for task in (chaos, reference):
                if not task.done():
                    task.cancel()
                    with contextlib.suppress(BaseException):
                        await task
        r = self.sentinels.client()
        logs = {t.session_id: [(int(i.split(b"-")[1]), _type(f[b"event"])) for i, f in r.xrange(f"ev:{t.session_id}")]
                for t in talkers if t.session_id}
        return Report(talkers, kills, failovers, ref, logs, seconds, time.monotonic() - started, load_start, load(),
                      self.lease_ms)


def _type(raw: bytes) -> str:
    import json
    return str(json.loads(raw)["type"])
