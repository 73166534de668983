"""Client of the FunASR runtime WebSocket protocol (runtime/docs/websocket_protocol.md in FunASR).

One connection per hub utterance: a JSON config message (`mode` online/offline/2pass, `chunk_size`,
`chunk_interval`, `wav_name`, `wav_format: pcm`, `audio_fs`, `is_speaking: true`, `hotwords`, `itn`),
then binary 16 kHz s16le PCM in `chunk_interval` strides, then `{"is_speaking": false}`. The server answers
JSON `{"mode", "text", "wav_name", "is_final", "timestamp", "stamp_sents"}`: `online`/`2pass-online`
texts are increments of the running hypothesis (partials), `offline`/`2pass-offline` texts are corrected
segments (the final is their concatenation). The utterance is complete at a message with `is_final`
true (or `is_end`) after the end flag, at the server closing, or after `final_idle_s` without messages
once a corrected segment arrived (servers differ in how they flag the last message).
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import re
from contextlib import AbstractAsyncContextManager
from dataclasses import dataclass, field
from typing import Any, Protocol

import numpy as np

from .base import Result, WordTiming
from .native import Utterance, UtteranceStream


class RuntimeEndpoint(Protocol):
    """What a runtime stream needs of its provider (FunASRProvider implements it)."""

    mode: str
    language: str | None
    stride_bytes: int
    final_idle_s: float
    final_wait_s: float

    def connect(self) -> AbstractAsyncContextManager[Any]: ...

    def runtime_config(self, name: str, language: str | None, mode: str,
                       hotwords: tuple[str, ...] = ()) -> dict[str, Any]: ...

log = logging.getLogger(__name__)

_CJK = re.compile(r"[\u3040-\u30ff\u3400-\u4dbf\u4e00-\u9fff\uac00-\ud7af]")
_PUNCT = re.compile(r"[^\w']+")


def tokens(text: str) -> list[str]:
    """FunASR's timestamp units: CJK characters one by one, other words whole; punctuation dropped."""
    out: list[str] = []
    for piece in text.split():
        word = ""
        for ch in piece:
            if _CJK.match(ch):
                if word:
                    out.append(word)
                    word = ""
                out.append(ch)
            elif _PUNCT.match(ch):
                if word:
                    out.append(word)
                    word = ""
            else:
                word += ch
        if word:
            out.append(word)
    return out


def parse_timestamps(value: Any) -> list[list[int]]:
    if isinstance(value, str):
        try:
            value = json.loads(value)
        except ValueError:
            return []
    if not isinstance(value, list):
        return []
    return [[int(p[0]), int(p[1])] for p in value if isinstance(p, list | tuple) and len(p) >= 2]


def words_of(message: dict[str, Any], text: str) -> list[WordTiming]:
    """Word timings (ms from the start of the connection's audio) from `stamp_sents` or `timestamp`."""
    out: list[WordTiming] = []
    sents = message.get("stamp_sents")
    if isinstance(sents, list) and sents:
        for sent in sents:
            segs = str(sent.get("text_seg", "")).split()
            stamps = parse_timestamps(sent.get("ts_list"))
            if len(segs) == len(stamps):
                out += [WordTiming(w, a, b, 1.0) for w, (a, b) in zip(segs, stamps, strict=True)]
        if out:
            return out
    stamps = parse_timestamps(message.get("timestamp"))
    toks = tokens(text)
    if stamps and len(toks) == len(stamps):
        out = [WordTiming(w, a, b, 1.0) for w, (a, b) in zip(toks, stamps, strict=True)]
    return out


def join_text(parts: list[str]) -> str:
    """Concatenate segments: CJK text joins without spaces, other text with one."""
    out = ""
    for p in (x.strip() for x in parts):
        if not p:
            continue
        if out and not (_CJK.match(out[-1]) and _CJK.match(p[0])):
            out += " "
        out += p
    return out


@dataclass
class _State:
    online: str = ""
    segments: list[str] = field(default_factory=list)
    words: list[WordTiming] = field(default_factory=list)
    end_sent: bool = False
    corrected_after_end: bool = False
    done: asyncio.Event = field(default_factory=asyncio.Event)
    heard: asyncio.Event = field(default_factory=asyncio.Event)  # a message came, or the reader ended
    last_message: float = 0.0


class FunASRRuntimeStream(UtteranceStream):
    provider: RuntimeEndpoint  # type: ignore[assignment]

    async def recognize(self, utt: Utterance) -> Result:
        p = self.provider
        st = _State()
        name = f"{self.opts.session_id}-{utt.id}"
        async with p.connect() as ws:
            await ws.send(json.dumps(p.runtime_config(name, self.opts.language, p.mode, self.opts.hotwords)))
            reader = asyncio.create_task(self._read(ws, utt, st))
            try:
                buf = bytearray()
                while (pieces := await utt.chunks()) is not None:
                    buf += np.concatenate(pieces).astype(np.int16, copy=False).tobytes()
                    while len(buf) >= p.stride_bytes:
                        await ws.send(bytes(buf[:p.stride_bytes]))
                        del buf[:p.stride_bytes]
                if buf:
                    await ws.send(bytes(buf))
                st.end_sent = True
                st.last_message = asyncio.get_running_loop().time()
                await ws.send(json.dumps({"is_speaking": False}))
                await self._wait_final(st, reader)
            finally:
                reader.cancel()
                with contextlib.suppress(BaseException):
                    await reader
        text = join_text(st.segments) if st.segments else st.online.strip()
        return Result(text, st.words, language=self.opts.language or p.language)

    async def _wait_final(self, st: _State, reader: asyncio.Task[None]) -> None:
        """Until the runtime says the utterance is done, its socket ends, or it stays quiet for its idle
        time: each message (which moves that time on) wakes this wait; nothing polls."""
        p = self.provider
        loop = asyncio.get_running_loop()
        reader.add_done_callback(lambda _t: st.heard.set())
        while not st.done.is_set() and not reader.done():
            idle = p.final_idle_s if st.corrected_after_end else p.final_wait_s
            left = st.last_message + idle - loop.time()
            if left <= 0:
                return
            st.heard.clear()
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(st.heard.wait(), left)
        if reader.done() and not reader.cancelled() and reader.exception() is not None:
            raise reader.exception()  # type: ignore[misc]

    async def _read(self, ws: Any, utt: Utterance, st: _State) -> None:
        import websockets

        loop = asyncio.get_running_loop()
        try:
            async for raw in ws:
                if isinstance(raw, bytes):
                    continue
                try:
                    m = json.loads(raw)
                except ValueError:
                    log.warning("funasr runtime sent a non-JSON message: %.80s", raw)
                    continue
                st.last_message = loop.time()
                st.heard.set()
                if m.get("error"):
                    raise RuntimeError(f"funasr runtime error: {m['error']}")
                mode = str(m.get("mode", ""))
                text = str(m.get("text", ""))
                if mode in ("online", "2pass-online"):
                    st.online += text
                elif mode in ("offline", "2pass-offline"):
                    if text.strip():
                        st.segments.append(text)
                        st.words += words_of(m, text)
                    st.online = ""
                    if st.end_sent:
                        st.corrected_after_end = True
                stable = join_text(st.segments)
                self.partial(utt, join_text([*st.segments, st.online]), stable)
                # a 2pass-online message may carry is_final=true while the server still thinks we speak
                if st.end_sent and (m.get("is_end") is True or (m.get("is_final") is True and mode != "2pass-online")):
                    st.done.set()
                    return
        except websockets.ConnectionClosed:
            pass
        st.done.set()
