"""Results in the language the client asked for (DESIGN §3.1).

- Every final carries a `language`: the tag the client asked for, or, under `auto` (or when none was
  asked), what the provider detected for that utterance.
- Chinese text is written in the asked script with OpenCC: Simplified for `zh`/`zh-CN` and for
  detected Chinese, Traditional for `zh-TW`/`zh-HK` (Taiwan/Hong Kong character standards, `s2tw`/`s2hk`:
  character by character, so a partial's stable prefix stays a prefix). Partials too, so a partial and
  its final never differ in script only.

OpenCC (PyPI `opencc`) is imported when the first Chinese result arrives; without it, Chinese text is
passed through unchanged and a warning is logged once.
"""

from __future__ import annotations

import dataclasses
import functools
import logging
import re
from collections.abc import Sequence
from typing import Any

from ..core.errors import HubError
from ..core.language import AUTO, parse_language
from .base import Result, StreamResult, StreamSink

log = logging.getLogger(__name__)

#: OpenCC configuration per target: every input is first made Simplified, so mixed text comes out uniform
_TO_SIMPLIFIED = "t2s"
_TO_TRADITIONAL = {"TW": "s2tw", "HK": "s2hk"}


@functools.lru_cache(maxsize=8)
def _converter(config: str) -> Any:
    try:
        import opencc
    except ImportError:
        log.warning("the 'opencc' package is not installed: Chinese text is not converted to the asked script")
        return None
    return opencc.OpenCC(config)


def _convert(text: str, config: str) -> str:
    conv = _converter(config)
    return str(conv.convert(text)) if conv is not None and text else text


def has_han(text: str) -> bool:
    return any("\u3400" <= ch <= "\u9fff" or "\uf900" <= ch <= "\ufaff" for ch in text)


#: spaces between two Han characters: Whisper sometimes writes Chinese phrases apart ("广州市 佛地产")
_HAN_GAP = re.compile(r"(?<=[\u3400-\u9fff\uf900-\ufaff]) +(?=[\u3400-\u9fff\uf900-\ufaff])")


def localise_text(text: str, language: str | None) -> str:
    """`text` in the script `language` (a tag or a detected code) calls for, with no spaces inside Chinese
    (written without spaces between words); other text unchanged."""
    if not has_han(text):
        return text
    return _in_script(_HAN_GAP.sub("", text), language)


def _in_script(text: str, language: str | None) -> str:
    """`text` converted to the script `language` calls for (OpenCC, which reads phrases: "反斗" stays 斗 in
    Traditional, where 斗 alone becomes 鬥)."""
    if not language or language == AUTO:
        return text
    try:
        tag = parse_language(language)
    except HubError:
        return text
    if tag.script is None:
        return text
    simplified = _convert(text, _TO_SIMPLIFIED)
    if tag.script == "Hans":
        return simplified
    region = next((p.upper() for p in tag.tag.split("-")[1:] if p.upper() in ("TW", "HK", "MO")), "TW")
    return _convert(simplified, _TO_TRADITIONAL.get(region, "s2hk"))


def localise_words(texts: Sequence[str], language: str | None) -> list[str]:
    """The words of one result in the script `language` calls for, converted as the text they make up (so
    they join to the localised text: word by word, 娛樂反斗相's 斗 came out 鬥); each without spaces inside
    Chinese. A conversion that changes the length (OpenCC phrase tables can) falls back to word by word."""
    joined = "".join(texts)
    if not has_han(joined):
        return list(texts)
    whole = _in_script(joined, language)
    if len(whole) != len(joined):
        return [localise_text(t, language) for t in texts]
    out, at = [], 0
    for t in texts:
        out.append(_HAN_GAP.sub("", whole[at:at + len(t)]))
        at += len(t)
    return out


def result_language(requested: str | None, detected: str | None) -> str | None:
    """The `language` of a result: the asked tag, or the detected one under `auto` or none."""
    if requested and requested != AUTO:
        return requested
    return detected or requested


def localise_result(res: Result, requested: str | None) -> Result:
    language = result_language(requested, res.language)
    text = localise_text(res.text, language)
    words = [dataclasses.replace(w, word=t) for w, t in zip(res.words, localise_words([w.word for w in res.words],
                                                                                      language), strict=True)]
    segments = [dataclasses.replace(seg, text=localise_text(seg.text, language)) for seg in res.segments]
    return dataclasses.replace(res, text=text, words=words, language=language, segments=segments)


def localise_stream_result(r: StreamResult, requested: str | None) -> StreamResult:
    language = result_language(requested, r.language if r.language != AUTO else None)
    words = tuple(dataclasses.replace(w, word=t) for w, t in zip(r.words, localise_words([w.word for w in r.words],
                                                                                          language), strict=True))
    return dataclasses.replace(r, text=localise_text(r.text, language),
                               stable_text=localise_text(r.stable_text, language), words=words, language=language)


def localising_sink(sink: StreamSink, requested: str | None) -> StreamSink:
    """A sink that labels and converts every result before passing it on."""
    return StreamSink(on_result=lambda r: sink.on_result(localise_stream_result(r, requested)),
                      on_error=sink.on_error)
