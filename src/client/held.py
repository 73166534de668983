"""The audio a client still holds (DESIGN §8 "Owner death → takeover", docs/PROTOCOL.md "Held audio").

Every `transcript.final` says how far the session's timeline is settled (`end_ms`). A client keeps the
audio it sent after that point, at most `replay_audio_s` of it, and forgets it as finals arrive. When the
session's node dies and another takes it over, the new node says from where it needs the audio again
(`session.migrated {audio_from_ms}`), and the client sends it again from there: the utterance that was
open is decoded again and no words are lost.

Only raw PCM (pcm_s16le, pcm_f32le, pcm_mulaw, pcm_alaw) can be cut at a time; audio in a container or a
compressed codec is not held (a takeover then loses the audio since the last final).
"""

from __future__ import annotations

from collections import deque

from ..core.commands import AudioSpec

SAMPLE_BYTES = {"pcm_s16le": 2, "pcm_f32le": 4, "pcm_mulaw": 1, "pcm_alaw": 1}
SILENCE = {"pcm_s16le": b"\x00\x00", "pcm_f32le": b"\x00\x00\x00\x00", "pcm_mulaw": b"\xff", "pcm_alaw": b"\xd5"}


class HeldAudio:
    def __init__(self, spec: AudioSpec, replay_audio_s: float) -> None:
        width = SAMPLE_BYTES.get(spec.encoding)
        self.frame = width * spec.channels if width else 0  # bytes per sample frame (0: not held)
        self.silence = SILENCE.get(spec.encoding, b"") * spec.channels
        self.rate = spec.sample_rate
        self.limit = int(replay_audio_s * spec.sample_rate) * self.frame  # bytes
        self.chunks: deque[tuple[int, bytes]] = deque()  # (byte position in the session's audio, data)
        self.sent = 0   # bytes sent so far (the position of the next)
        self.start = 0  # the position of the oldest byte held

    @property
    def enabled(self) -> bool:
        return self.frame > 0 and self.limit > 0

    def _pos(self, ms: int) -> int:
        return (ms * self.rate // 1000) * self.frame

    def add(self, data: bytes) -> None:
        """`data` was sent (the next audio of the session)."""
        if self.enabled:
            self.chunks.append((self.sent, data))
        self.sent += len(data)
        self._forget(self.sent - self.limit)

    def settled(self, end_ms: int) -> None:
        """A final ended at `end_ms`: the audio before it is no longer needed."""
        self._forget(self._pos(end_ms))

    def _forget(self, before: int) -> None:
        while self.chunks and self.chunks[0][0] + len(self.chunks[0][1]) <= before:
            self.chunks.popleft()
        if self.chunks and self.chunks[0][0] < before:  # cut the first chunk at a frame
            pos, data = self.chunks[0]
            cut = (before - pos) // max(1, self.frame) * self.frame
            self.chunks[0] = (pos + cut, data[cut:])
        self.start = self.chunks[0][0] if self.chunks else self.sent

    def covers(self, from_ms: int, size: int) -> bool:
        """Whether a hub that has `from_ms` of audio (whole ms, rounded down) has the `size` bytes after
        what was sent too: audio whose sending was cut (HTTP + SSE: a POST the client closed when its
        event stream dropped, which the hub had taken all the same). False when it cannot be told (not
        held, or less than a millisecond)."""
        if not self.frame or size < self.frame:
            return False
        end_ms = (self.sent + size) // self.frame * 1000 // self.rate
        if end_ms <= self.sent // self.frame * 1000 // self.rate:
            return False
        return from_ms >= end_ms

    def _edge(self, from_ms: int) -> int:
        """The byte position of `from_ms`, where the hub counts whole milliseconds (rounded down) of the
        audio it has: a message boundary within that millisecond is where its audio really ends (it takes
        whole messages), so the fraction of a millisecond before it is not sent twice."""
        pos, upto = self._pos(from_ms), self._pos(from_ms + 1)
        if pos < self.sent < upto:
            return self.sent
        for p, _ in self.chunks:
            if pos <= p < upto:
                return p
        return pos

    def since(self, from_ms: int) -> tuple[bytes, int]:
        """The audio to send again from `from_ms`: what is held, after silence standing for what is no
        longer held (so the session's timeline stays one); and the milliseconds of that silence (the gap)."""
        if not self.enabled:
            return b"", 0
        pos = min(self._edge(from_ms), self.sent)
        gap = max(0, self.start - pos)
        parts = [self.silence * (gap // self.frame)] if gap else []
        for p, data in self.chunks:
            if p + len(data) <= pos:
                continue
            parts.append(data[max(0, pos - p):])
        return b"".join(parts), gap // self.frame * 1000 // self.rate
