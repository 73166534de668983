"""Shared test helpers: the speech manifest, WER scoring, a real hub process, a raw WebSocket client and
one through asrhub.client, and the one way tests wait for a condition: on events (`until`,
`until_changed`), never by counting loop ticks or sleeping between checks."""

from __future__ import annotations

import asyncio
import csv
import inspect
import json
import os
import random
import re
import signal
import socket
import subprocess
import sys
import threading
import time
from collections.abc import AsyncIterable, AsyncIterator, Awaitable, Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TypeVar

import jiwer
import numpy as np

REPO = Path(__file__).resolve().parents[1]
#: The real speech every test reads (tests/data/README.md: sources and licences). Only bench/ may use the
#: larger shared set beside the checkout (bench.common.SPEECH_ROOT), passing it as `root`.
SPEECH = REPO / "tests" / "data" / "speech"


@dataclass(frozen=True)
class Clip:
    file: str
    seconds: float
    rate: int
    channels: int
    language: str
    transcript: str
    root: Path = SPEECH

    @property
    def path(self) -> Path:
        return self.root / self.file


def manifest(root: Path = SPEECH) -> list[Clip]:
    with open(root / "MANIFEST.tsv", newline="", encoding="utf-8") as f:
        rows = list(csv.DictReader(f, delimiter="\t"))
    return [Clip(r["file"], float(r["seconds"]), int(r["sample_rate"]), int(r["channels"]), r["language"],
                 r["transcript"], root) for r in rows]


def english(root: Path = SPEECH) -> list[Clip]:
    return [c for c in manifest(root) if c.language == "en" and c.transcript]


def clip(name: str, root: Path = SPEECH) -> Clip:
    return next(c for c in manifest(root) if c.file.startswith(name))


_NUMBERS = {"1": "one", "2": "two", "3": "three", "4": "four", "5": "five", "6": "six", "7": "seven",
            "8": "eight", "9": "nine", "10": "ten"}


def normalise(text: str) -> str:
    t = text.lower().replace("-", " ")
    t = re.sub(r"[^\w' ]+", " ", t)
    t = re.sub(r"'(?!\w)|(?<!\w)'", " ", t)
    words = [_NUMBERS.get(w, w) for w in t.split()]
    return " ".join(words)


def wer(refs: list[str], hyps: list[str]) -> float:
    r = [normalise(x) for x in refs]
    h = [normalise(x) for x in hyps]
    return float(jiwer.wer(r, h))


def load_pcm16(path: Path) -> np.ndarray:
    from asrhub.engine.transcribe import load_audio
    return load_audio(path.read_bytes())


def load_native(path: Path) -> tuple[np.ndarray, int]:
    """Float32 (n, channels) at the file's own rate."""
    import av
    with av.open(str(path)) as c:
        st = c.streams.audio[0]
        rate = st.codec_context.sample_rate
        parts = []
        for fr in c.decode(st):
            a = fr.to_ndarray()
            if a.dtype.kind == "i":
                a = a.astype(np.float32) / float(np.iinfo(a.dtype).max + 1)
            a = a.astype(np.float32)
            a = a.T if fr.format.is_planar else a.reshape(-1, len(fr.layout.channels))
            parts.append(a)
    return np.concatenate(parts), rate


T = TypeVar("T")
#: How watchfiles groups a burst of writes (ms): a log line wakes a waiter after about `step`.
WATCH_DEBOUNCE_MS, WATCH_STEP_MS = 400, 20


async def until(check: Callable[[], T | Awaitable[T]], wake: asyncio.Event | AsyncIterable[object], *,
                timeout: float = 30.0, what: str = "the condition") -> T:  # noqa: ASYNC109
    """Wait until `check()` (plain or async) is truthy and return its value. It runs once at once, then
    again each time `wake` fires: an asyncio.Event that what is waited for sets on each change (cleared
    here before each check, so it says "something changed", never the condition itself: to wait for an
    event to be set, await `event.wait()`), or an async iterable that yields on each change (a
    `FileWatch`). AssertionError naming `what` after `timeout` s."""
    async def value() -> T:
        v = check()
        return await v if inspect.isawaitable(v) else v

    async def run() -> T:
        if isinstance(wake, asyncio.Event):
            while True:
                wake.clear()
                if v := await value():
                    return v
                await wake.wait()
        if v := await value():
            return v
        async for _ in wake:
            if v := await value():
                return v
        raise AssertionError(f"{what}: the changes ended first")

    try:
        return await asyncio.wait_for(run(), timeout)
    except TimeoutError:
        raise AssertionError(f"{what}: not met within {timeout:g} s") from None


def _news(path: Path, offset: int, own: tuple[str, ...]) -> tuple[int, bool]:
    """(the file's new end, whether what was written after `offset` has a line not of `own`)."""
    if not path.exists():
        return 0, True
    with open(path, "rb") as f:
        f.seek(offset)
        new = f.read()
    lines = new.decode(errors="replace").splitlines()
    return offset + len(new), not own or any(not any(o in line for o in own) for line in lines)


class FileWatch:
    """Writes to files (a process's logs), seen through inotify: watchfiles' notifier on each file's
    folder (so a replace counts too), set up when this is made, so that nothing written after is missed,
    not even between a first check and the wait. `own`: what the files say of the waiter's own doing
    (e.g. "GET /readyz" in an access log): writes of only such lines do not count. Async-iterable:
    yields after each write that counts (`until(check, FileWatch(log))`)."""

    def __init__(self, path: Path, *more: Path, own: tuple[str, ...] = ()) -> None:
        # watchfiles.watch's own notifier, which watch() sets up only on its first step
        from watchfiles._rust_notify import RustNotify

        self.paths = (path, *more)
        self.own = own
        self.offsets = {p: p.stat().st_size if p.exists() else 0 for p in self.paths}
        self.stop = threading.Event()
        folders = sorted({str(p.parent) for p in self.paths})
        self._notify = RustNotify(folders, False, False, 300, False, False)

    def wait(self, timeout_s: float | None = None) -> bool:
        """Block until the file has a new line that counts (True); False after `timeout_s`, or once
        `stop` is set."""
        end = None if timeout_s is None else time.monotonic() + timeout_s
        while not self.stop.is_set():
            ms = 0 if end is None else max(1, int((end - time.monotonic()) * 1000))  # 0: no timeout
            raw = self._notify.watch(WATCH_DEBOUNCE_MS, WATCH_STEP_MS, ms, self.stop)
            if isinstance(raw, str):  # "timeout", "stop", "signal"
                return False
            news = False
            for path in {Path(p) for _, p in raw} & set(self.paths):
                self.offsets[path], written = _news(path, self.offsets[path], self.own)
                news = news or written
            if news:
                return True
        return False

    def close(self) -> None:
        self.stop.set()

    def __aiter__(self) -> FileWatch:
        return self

    async def __anext__(self) -> object:
        try:
            if await asyncio.to_thread(self.wait):
                return self.paths
        except asyncio.CancelledError:
            self.stop.set()  # the thread's wait ends within a step
            raise
        raise StopAsyncIteration


def until_changed(path: Path | tuple[Path, ...], check: Callable[[], T], *, timeout: float = 30.0,
                  what: str = "the condition", proc: subprocess.Popen[bytes] | None = None,
                  own: tuple[str, ...] = ()) -> T:
    """`until` for synchronous tests, woken by writes to `path` (a process's log, or several; `own` as in
    FileWatch): `check()` runs at once, then after each write, until it is truthy. A `proc` that exits ends
    the wait (after one more check)."""
    paths = path if isinstance(path, tuple) else (path,)
    watch = FileWatch(*paths, own=own)  # before the first check: a write just after it still wakes the wait
    if proc is not None:
        threading.Thread(target=lambda: (proc.wait(), watch.stop.set()), daemon=True).start()
    end = time.monotonic() + timeout
    try:
        if value := check():
            return value
        while (left := end - time.monotonic()) > 0 and watch.wait(left):
            if value := check():
                return value
        if value := check():
            return value
    finally:
        watch.close()
    if proc is not None and proc.poll() is not None:
        raise AssertionError(f"{what}: the process exited with {proc.returncode} first")
    raise AssertionError(f"{what}: not met within {timeout:g} s")


def free_port() -> int:
    return free_ports(1)[0]


# Ports for servers are taken below the kernel's ephemeral range (Linux: 32768-60999), where no outgoing
# connection is given one: a port the kernel handed out (bind to 0) came from that range, and a client's
# connection could take it while its hub restarted on it ("address already in use", a fresh-clone run).
PORT_LOW, PORT_HIGH = 20000, 32767


def free_ports(n: int) -> list[int]:
    """`n` distinct free loopback ports: all bound at once, then released (one at a time, the same port
    could come out twice: a hub whose HTTP and gRPC ports collided failed to start)."""
    socks: list[socket.socket] = []
    try:
        while len(socks) < n:
            s = socket.socket()
            try:
                s.bind(("127.0.0.1", random.randint(PORT_LOW, PORT_HIGH)))
            except OSError:  # taken: another
                s.close()
                continue
            socks.append(s)
        return [int(s.getsockname()[1]) for s in socks]
    finally:
        for s in socks:
            s.close()


class HubProcess:
    """A real `asrhub serve` process on loopback. The ports are fixed per instance, so `stop()` then
    `start()` restarts the hub where clients left it (as a reconnecting browser expects)."""

    def __init__(self, config_text: str | None, tmp: Path, env: dict[str, str] | None = None, *,
                 command: list[str] | None = None, cwd: Path | None = None, extra_args: list[str] | None = None) -> None:
        """`config_text=None`: no --config (the embedded default). `command`: the program to run instead of
        this interpreter's `-m asrhub.cli` (e.g. an installed `asrhub` script); `cwd`: where it runs."""
        self.port, self.grpc_port = free_ports(2)
        self.config: Path | None = None
        if config_text is not None:
            self.config = tmp / f"hub-{self.port}.yaml"
            self.config.write_text(config_text)
        self.log = tmp / f"hub-{self.port}.log"
        self.env = {**os.environ, **(env or {})}
        self.command = command or [sys.executable, "-m", "asrhub.cli"]
        self.cwd = cwd
        self.extra_args = extra_args or []
        self.scheme = "http"  # "https" for a hub with server.tls; then `verify` is the CA file to trust
        self.verify: Any = True
        self.proc: subprocess.Popen[bytes] | None = None

    @property
    def http(self) -> str:
        return f"{self.scheme}://127.0.0.1:{self.port}"

    @property
    def ws(self) -> str:
        return f"{'wss' if self.scheme == 'https' else 'ws'}://127.0.0.1:{self.port}/v1/ws"

    def start(self, timeout: float = 120.0) -> HubProcess:
        import httpx
        self._logf = open(self.log, "ab")  # noqa: SIM115  (append: stop() + start() restarts on the same port)
        config = ["--config", str(self.config)] if self.config is not None else []
        self.proc = subprocess.Popen(
            [*self.command, "serve", *config, "--port", str(self.port), "--grpc-port", str(self.grpc_port),
             *self.extra_args], stdout=self._logf, stderr=subprocess.STDOUT, env=self.env, cwd=self.cwd)
        proc = self.proc
        log_start = self.log.stat().st_size  # stop() then start() appends to the same log

        def ready() -> bool:
            """Asked once uvicorn has said it runs, and again after each later log line, until /readyz
            says 200 (a log line of our own /readyz does not ask again)."""
            if proc.poll() is not None:
                raise RuntimeError(f"hub exited with {proc.returncode}:\n{self.log.read_text()[-3000:]}")
            with open(self.log, "rb") as f:
                f.seek(log_start)
                if b"Uvicorn running on" not in f.read():
                    return False
            try:
                return httpx.get(self.http + "/readyz", timeout=5, verify=self.verify).status_code == 200
            except httpx.HTTPError:
                return False

        try:
            until_changed(self.log, ready, timeout=timeout, what="hub ready", proc=proc, own=("GET /readyz",))
        except AssertionError:
            self.stop()
            raise RuntimeError(f"hub not ready in {timeout} s (exit {proc.poll()}):\n"
                               f"{self.log.read_text()[-3000:]}") from None
        return self

    def alive(self) -> bool:
        return self.proc is not None and self.proc.poll() is None

    def stop(self, sig: int = signal.SIGTERM) -> None:
        if self.proc and self.proc.poll() is None:
            self.proc.send_signal(sig)
            try:
                self.proc.wait(20)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        if hasattr(self, "_logf"):
            self._logf.close()


def running(config_text: str | None, tmp: Path, env: dict[str, str] | None = None) -> Iterator[HubProcess]:
    """A started `HubProcess`, for a fixture to `yield from`: stopped when the fixture ends."""
    hub = HubProcess(config_text, tmp, env).start()
    try:
        yield hub
    finally:
        hub.stop()


def base_config(**sections: str) -> str:
    """The embedded default plus test-friendly limits; extra YAML sections may be appended."""
    text = (REPO / "config" / "config.yaml").read_text()
    text += "\nlimits:\n  idle_timeout_s: 20\n  resume_window_s: 5\n"
    for body in sections.values():
        text += "\n" + body
    return text


def keyed_config(*keys: dict[str, object], **auth: object) -> str:
    """`base_config()` whose `server.auth` lists these API keys (each as config.example.yaml's
    `server.auth.api_keys` items: key, name, max_sessions, ...) and sets any other auth settings
    (token_secret, token_ttl_max_s, ...)."""
    settings = "".join(f"    {name}: {value}\n" for name, value in auth.items())
    listed = "".join(f"      - {json.dumps(key)}\n" for key in keys)  # JSON: a YAML flow mapping
    return base_config().replace("server:\n", f"server:\n  auth:\n{settings}    api_keys:\n{listed}", 1)


async def paced(pcm: bytes, chunk_bytes: int, *, realtime: float | None = 1.0,
                bytes_per_s: int = 32000) -> AsyncIterator[bytes]:
    """`pcm` in `chunk_bytes` pieces, each given once the audio before it is due at `realtime` x real time
    from the first (a sender's own pacing, as a microphone's; 0 or None: as fast as they are taken). The
    one pacing of the tests' and benches' streams."""
    t0 = time.perf_counter()
    sent = 0
    for i in range(0, len(pcm), chunk_bytes):
        piece = pcm[i:i + chunk_bytes]
        yield piece
        sent += len(piece)
        if realtime:
            delay = t0 + sent / bytes_per_s / realtime - time.perf_counter()
            if delay > 0:
                await asyncio.sleep(delay)


async def ws_stream(url: str, pcm: bytes, *, start: dict[str, Any] | None = None, chunk_bytes: int = 1280,
                    realtime: float = 1.0, bytes_per_s: int = 32000, stop: bool = True,
                    timeout: float = 120.0, ssl_context: Any = None) -> list[dict[str, Any]]:  # noqa: ASYNC109
    """Stream audio over WebSocket at `realtime` pace, then stop; returns every event received."""
    import websockets

    events: list[dict[str, Any]] = []
    cmd = {"type": "start", "audio": {"encoding": "pcm_s16le", "sample_rate": 16000, "channels": 1}}
    cmd.update(start or {})
    async with websockets.connect(url, max_size=None, **({"ssl": ssl_context} if ssl_context else {})) as ws:
        await ws.send(json.dumps(cmd))

        async def reader() -> None:
            async for msg in ws:
                events.append(json.loads(msg))

        rtask = asyncio.create_task(reader())
        async for piece in paced(pcm, chunk_bytes, realtime=realtime, bytes_per_s=bytes_per_s):
            await ws.send(piece)
        if stop:
            await ws.send(json.dumps({"type": "stop"}))
        await asyncio.wait_for(rtask, timeout)
    return events


async def client_stream(base_url: str, pcm: bytes, *, start: dict[str, Any] | None = None, chunk_bytes: int = 1280,
                        realtime: float = 1.0, timeout: float = 120.0,  # noqa: ASYNC109
                        api_key: str | None = None) -> list[dict[str, Any]]:
    """Stream 16 kHz pcm_s16le through the project's own client (asrhub.client, WebSocket) at `realtime`
    pace (0: as fast as possible), then stop; every event of the session as its JSON dict. For tests whose
    subject is not the wire (providers, failover, reload): the wire itself is tested by ws_stream and the
    contract suite's raw clients."""
    from asrhub.client import StartSession, WebSocketClient

    opts = StartSession.model_validate({"audio": {"encoding": "pcm_s16le", "sample_rate": 16000, "channels": 1},
                                        **(start or {})})
    client = WebSocketClient(base_url, api_key=api_key)

    async def run() -> list[dict[str, Any]]:
        return [ev.to_dict() async for ev in client.stream(pcm, opts, realtime=realtime or None,
                                                           chunk_ms=max(1, chunk_bytes // 32))]

    return await asyncio.wait_for(run(), timeout)


def finals(events: list[dict[str, Any]]) -> list[dict[str, Any]]:
    return [e for e in events if e["type"] == "transcript.final"]


def final_text(events: list[dict[str, Any]]) -> str:
    return " ".join(e["text"] for e in finals(events)).strip()


def last_voiced_end(pcm: np.ndarray) -> int:
    """Just after the last frame the hub's default VAD calls speech."""
    from asrhub.operators.vad_webrtc import WebRtcVad

    vad = WebRtcVad(2)
    n = vad.frame_samples
    end = len(pcm)
    for i in range(0, len(pcm) - n + 1, n):
        if vad.is_speech(pcm[i:i + n]):
            end = i + n
    return end


class EndpointFeed:
    """What the endpointer yields, fed to a provider stream and its ring as the hub's feeding does: audio
    into both, speech start / pause / end as the stream's utterance markers (`count`: utterances opened)."""

    def __init__(self, stream: Any, ring: Any) -> None:
        self.stream = stream
        self.ring = ring
        self.count = 0
        self.open_id: str | None = None

    def __call__(self, items: list[Any]) -> None:
        from asrhub.core.audio import AudioChunk
        from asrhub.operators.base import PauseHint, SpeechEnd, SpeechStart

        for it in items:
            if isinstance(it, AudioChunk):
                self.ring.append(it.samples)
                self.stream.push(it)
            elif isinstance(it, SpeechStart):
                self.count += 1
                self.open_id = f"u{self.count}"
                self.stream.start_utterance(self.open_id, it.audio_start)
            elif isinstance(it, PauseHint) and self.open_id is not None:
                self.stream.pause_hint(self.open_id, it.offset)
            elif isinstance(it, SpeechEnd) and self.open_id is not None:
                self.stream.end_utterance(self.open_id, it.offset)
                self.open_id = None
