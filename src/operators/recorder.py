"""Recorder: writes a session's (or each utterance's) normalised audio to WAV files, with a size cap.

Files are 16 kHz mono 16-bit PCM WAV under the configured folder, named `<session id>.wav` (per
session) or `<session id>-u<n>.wav` (per utterance, numbered in the order the recorder sees them; with
the recorder after the VAD and the wake word gate these are the session's utterance ids). Writes go
through a 64 KiB buffer (a few syscalls a second per session, never a wait on the loop worth noting);
the header is patched when the file is closed (end of utterance, session end). A recorder placed after
a wake word gate leaves the gated audio out.

The cap (`max_total_mb`) covers every WAV file in the folder: when a write would exceed it, the oldest
closed files are deleted first; if the files still being written exceed it alone, the file that hit
the cap is closed and its recording stops (logged).
"""

from __future__ import annotations

import logging
import os
import struct
import threading
from collections import OrderedDict, deque
from dataclasses import dataclass
from pathlib import Path
from typing import BinaryIO

import numpy as np

from ..core.audio import HUB_RATE, AudioChunk
from .base import Gated, Item, SpeechEnd, SpeechStart

log = logging.getLogger(__name__)

HEADER_BYTES = 44
BUFFER_BYTES = 1 << 16


def wav_header(data_bytes: int, rate: int = HUB_RATE) -> bytes:
    return (b"RIFF" + struct.pack("<I", 36 + data_bytes) + b"WAVEfmt "
            + struct.pack("<IHHIIHH", 16, 1, 1, rate, rate * 2, 2, 16) + b"data" + struct.pack("<I", data_bytes))


class RecordingStore:
    """Every recording in one folder: sizes, age order and the cap (shared by the sessions)."""

    def __init__(self, folder: Path, cap_bytes: int) -> None:
        self.folder = folder
        self.cap = cap_bytes
        self._lock = threading.Lock()
        folder.mkdir(parents=True, exist_ok=True)
        found = []
        for entry in os.scandir(folder):
            if entry.name.endswith(".wav") and entry.is_file():
                st = entry.stat()
                found.append((st.st_mtime, Path(entry.path), st.st_size))
        self._closed: OrderedDict[Path, int] = OrderedDict((p, n) for _, p, n in sorted(found))
        self._open: dict[Path, int] = {}
        self.total = sum(self._closed.values())
        self.deleted = 0

    def opened(self, path: Path) -> None:
        with self._lock:
            self._open[path] = 0

    def grow(self, path: Path, nbytes: int) -> bool:
        """Account `nbytes` more for the open file `path`, deleting the oldest closed files past the cap.
        False: the cap cannot be held without dropping open files; the caller stops writing."""
        with self._lock:
            self.total += nbytes
            while self.total > self.cap and self._closed:
                old, size = self._closed.popitem(last=False)
                self.total -= size
                try:
                    old.unlink()
                    self.deleted += 1
                except FileNotFoundError:
                    pass
                except OSError as e:
                    log.warning("recorder: cannot delete %s: %s", old, e)
            if self.total > self.cap:
                self.total -= nbytes
                return False
            self._open[path] = self._open.get(path, 0) + nbytes
            return True

    def shrink(self, path: Path, nbytes: int) -> None:
        with self._lock:
            self.total -= nbytes
            self._open[path] = self._open.get(path, 0) - nbytes

    def closed(self, path: Path) -> None:
        with self._lock:
            size = self._open.pop(path, None)
            if size is not None:
                self._closed[path] = size


_stores: dict[Path, RecordingStore] = {}
_stores_lock = threading.Lock()


def get_store(folder: str, max_total_mb: float) -> RecordingStore:
    """The process-wide store of `folder` (scanned once, on first use: call it early off the loop)."""
    path = Path(folder).expanduser().resolve()
    cap = int(max_total_mb * 1024 * 1024)
    with _stores_lock:
        store = _stores.get(path)
        if store is None:
            store = _stores[path] = RecordingStore(path, cap)
        store.cap = cap
        return store


class WavWriter:
    """A growing 16 kHz mono int16 WAV file; its cap accounting goes through the store."""

    def __init__(self, store: RecordingStore, path: Path) -> None:
        self.store = store
        self.path = path
        self._f: BinaryIO | None = open(path, "wb", buffering=BUFFER_BYTES)  # noqa: SIM115
        self.samples = 0
        store.opened(path)
        self._f.write(wav_header(0))
        self.ok = store.grow(path, HEADER_BYTES)

    def write(self, samples: np.ndarray) -> bool:
        if self._f is None or not self.ok or len(samples) == 0:
            return self.ok
        data = samples.astype("<i2", copy=False).tobytes()
        if not self.store.grow(self.path, len(data)):
            self.ok = False
            log.warning("recorder: %s stopped at the size cap of %.0f MB", self.path.name, self.store.cap / 2**20)
            return False
        self._f.write(data)
        self.samples += len(samples)
        return True

    def truncate(self, samples: int) -> None:
        """Drop what was written past `samples` (the end of an utterance is known after its hangover)."""
        if self._f is None or samples >= self.samples:
            return
        samples = max(0, samples)
        self._f.seek(HEADER_BYTES + 2 * samples)
        self._f.truncate()
        self.store.shrink(self.path, 2 * (self.samples - samples))
        self.samples = samples

    def close(self) -> None:
        if self._f is None:
            return
        f, self._f = self._f, None
        try:
            f.seek(0)
            f.write(wav_header(2 * self.samples))
        finally:
            f.close()
            self.store.closed(self.path)


@dataclass
class _Span:
    path: str
    start: int
    end: int


class Recorder:
    """Pipeline stage: records the AudioChunks passing it; items go through unchanged."""

    def __init__(self, store: RecordingStore, session_id: str, per: str = "session", history_s: float = 8.0) -> None:
        self.store = store
        self.session_id = session_id
        self.per = per
        self._writer: WavWriter | None = None
        self._start = 0  # timeline offset of the current file's first sample
        self._history: deque[AudioChunk] = deque()
        self._history_s = history_s
        self._count = 0
        self._spans: deque[_Span] = deque(maxlen=256)
        self._full = False  # per-session file stopped at the cap
        self.files: list[str] = []

    # -- the stage -------------------------------------------------------------------------
    def process(self, items: list[Item]) -> list[Item]:
        for it in items:
            if isinstance(it, AudioChunk):
                self._audio(it)
            elif self.per == "utterance" and isinstance(it, SpeechStart):
                self._close_file(None)
                self._open_file(it.audio_start)
            elif self.per == "utterance" and isinstance(it, SpeechEnd):
                self._close_file(it.offset)
            elif isinstance(it, Gated):
                pass  # held back by a wake word gate before the recorder: not recorded
        return items

    def flush(self, items: list[Item], at: int) -> list[Item]:
        return self.process(items)

    def close(self, items: list[Item], at: int) -> list[Item]:
        out = self.process(items)
        self._close_file(None)
        return out

    def release(self) -> None:
        self._close_file(None)
        self._history.clear()

    def recording_for(self, start: int, end: int) -> str | None:
        """The file holding the utterance [start, end): the session's file, or the utterance file
        that overlaps it most."""
        if self.per == "session":
            return self.files[0] if self.files else None
        best, overlap = None, 0
        for s in self._spans:
            o = min(end, s.end) - max(start, s.start)
            if o > overlap:
                best, overlap = s.path, o
        return best

    # -- internals -------------------------------------------------------------------------
    def _audio(self, chunk: AudioChunk) -> None:
        if self.per == "session":
            if self._writer is None and not self._full:
                self._open_file(chunk.offset)
            if self._writer is not None and not self._writer.write(chunk.samples):
                self._full = True
                self._close_file(None)
            return
        self._history.append(chunk)
        while self._history and self._history[-1].end - self._history[0].end > self._history_s * HUB_RATE:
            self._history.popleft()
        w = self._writer
        if w is not None:
            self._spans[-1].end = chunk.end
            if not w.write(chunk.samples):
                self._close_file(None)

    def _open_file(self, start: int) -> None:
        self._count += 1
        name = f"{self.session_id}.wav" if self.per == "session" else f"{self.session_id}-u{self._count}.wav"
        path = self.store.folder / name
        try:
            w = WavWriter(self.store, path)
        except OSError as e:
            log.warning("recorder: cannot create %s: %s", path, e)
            return
        self._writer, self._start = w, start
        self.files.append(str(path))
        self._spans.append(_Span(str(path), start, start))
        if self.per == "utterance":  # the pre-roll: audio before the marker, still in the history
            for c in self._history:
                if c.end > start:
                    w.write(c.samples[max(0, start - c.offset):])
            self._spans[-1].end = start + w.samples

    def _close_file(self, end: int | None) -> None:
        w, self._writer = self._writer, None
        if w is None:
            return
        if end is not None:
            w.truncate(end - self._start)
            self._spans[-1].end = self._start + w.samples
        try:
            w.close()
        except OSError as e:
            log.warning("recorder: cannot finish %s: %s", w.path, e)
