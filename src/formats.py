"""Transcript formatters shared by the CLI and the REST routes: plain text, SRT, WebVTT."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Protocol


class TimedText(Protocol):
    """A segment of a transcript: its text and where it stands in the audio (ms)."""

    @property
    def start_ms(self) -> int: ...

    @property
    def end_ms(self) -> int: ...

    @property
    def text(self) -> str: ...


def _fmt_ts(ms: int, sep: str) -> str:
    h, rem = divmod(ms, 3_600_000)
    m, rem = divmod(rem, 60_000)
    s, ms = divmod(rem, 1000)
    return f"{h:02d}:{m:02d}:{s:02d}{sep}{ms:03d}"


def format_segments(segments: Sequence[TimedText], fmt: str) -> str:
    if fmt == "srt":
        return "\n".join(f"{i}\n{_fmt_ts(s.start_ms, ',')} --> {_fmt_ts(s.end_ms, ',')}\n{s.text}\n"
                         for i, s in enumerate(segments, 1))
    if fmt == "vtt":
        return "WEBVTT\n\n" + "\n".join(f"{_fmt_ts(s.start_ms, '.')} --> {_fmt_ts(s.end_ms, '.')}\n{s.text}\n"
                                         for s in segments)
    return " ".join(s.text for s in segments).strip() + "\n"
