"""When a stream's final is decoded again, and which result then stands (issue 20 item 6).

Pure functions on decoder outputs: `plan` looks at a final's first decode (its own words, after any left
context was removed) and says whether to decode again and how; `settle` picks between the first result and
the re-decode's. The stream adapter runs the decodes (`StreamAdapter._final`); the provider's own guard
(`whisper_ct2.final_guard`: loops, restarts, non-speech phrases, prompt echoes) has already judged each
decode before it gets here.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, replace
from typing import Literal

from .base import Result
from .text_guard import bare, bare_words, count_words, echoes, one_copy, restart_tail, self_repeat
from .text_join import join_words

Why = Literal["self_repeat", "echo", "check_speech", "short_of_partials", "tail_word"]


@dataclass(frozen=True)
class Redecode:
    """Decode the final again. `alone`: the utterance's audio only (else with the left context's audio in
    front, as the first decode); `prefix`: the forced text (None: none); `prompt`: keep the previous-text
    prompt; `words`: with word timestamps."""

    why: Why
    alone: bool
    prefix: str | None
    prompt: bool
    words: bool = False


def plan(text: str, *, context: str, forced: str, stable: Sequence[str], short_of: float) -> Redecode | None:
    """Whether a final whose first decode wrote `text` (its own words) is decoded again. `context`: the
    earlier finals' text forced in front of it (2-pass, "" without); `forced`: the stable text that decode
    was forced to start with; `stable`: the words its partials have promised by now; `short_of`: a final
    with fewer words than this share of a stable text of 4+ words is short."""
    if self_repeat(text):
        # the whole utterance said twice ("in 1813. In 1813."): alone, without the left context, the prompt or
        # the stable text (the provider's guard re-decodes a repeat with the temperature fallback)
        return Redecode("self_repeat", alone=True, prefix=None, prompt=False)
    if context and echoes(text, context):
        # the decoder read the context's audio again (noise after it, a repeat): the utterance alone
        return Redecode("echo", alone=True, prefix=forced or None, prompt=False)
    if context and len(text.split()) <= 2:
        # a word or two after the context: the decoder may just be continuing the context's text over noise,
        # which Whisper's no-speech check cannot tell (the window holds the context's speech): the utterance
        # decoded alone must be speech for them to stand
        return Redecode("check_speech", alone=True, prefix=None, prompt=False)
    if len(stable) >= 4 and count_words(text) < short_of * count_words(" ".join(stable)):
        # far fewer words than the partials agreed on: again with them forced (a final is never worse than
        # the partials it replaces)
        return Redecode("short_of_partials", alone=False, prefix=join_words([context, *stable]), prompt=True)
    if one_word_restart(text):
        # its opening word again at its end ("4 Queen of Cloves 4"): Whisper's restart on the silence after a
        # short utterance (a push-to-talk final's tail is digital silence), or a word said there. The same
        # decode with word times says where it lies (`settle`)
        return Redecode("tail_word", alone=False, prefix=join_words([context, forced]) or None, prompt=True, words=True)
    return None


def one_word_restart(text: str) -> bool:
    """The text's last word is its first again, with two or more words between (`restart_tail` judges
    restarts of two or more words: a lone word said again may be speech, "go go")."""
    words = bare_words(text)
    return len(words) >= 4 and words[-1] == words[0]


def settle(why: Why, first: Result, again: Result | None, voiced_ms: int | None = None) -> Result:
    """The final that stands after a re-decode: `first` is the first decode's result, `again` the
    re-decode's (its own words), None if the re-decode failed; `voiced_ms`: where the utterance's voiced
    audio ends (ms from its start)."""
    if why == "tail_word":
        return _cut_tail_word(first, again, voiced_ms)
    if why == "check_speech":
        # speech decoded alone (or no verdict): the first decode's words stand; silence alone: none
        return first if again is None or again.text.strip() else Result(text="", language=first.language)
    if why == "self_repeat":
        fallback = Result(text=one_copy(first.text), language=first.language)  # if it still repeats, one copy
    elif why == "echo":
        fallback = Result(text="", language=first.language)  # the echo is never kept
    else:
        fallback = first
    if again is None:
        return fallback
    if fallback.text and (self_repeat(again.text) or count_words(again.text) < count_words(fallback.text)):
        return fallback
    return again


def _cut_tail_word(first: Result, again: Result | None, voiced_ms: int | None) -> Result:
    """`first` without its last word when the re-decode (the same decode, with word times) puts that word
    past the utterance's voiced audio (its middle in the tail the VAD called silence): no one said it."""
    timed = [w for w in again.words if bare(w.word)] if again is not None else []
    words = first.text.split()
    if (voiced_ms is None or not timed or again is None or again.text.split() != words
            or (timed[-1].start_ms + timed[-1].end_ms) / 2 < voiced_ms):
        return first
    kept = first.words[:-1] if first.words else []
    return replace(first, text=" ".join(words[:-1]), words=kept)


def cut_restart(res: Result, promised: int) -> Result:
    """A final (its own words) without a restart of its opening words after its last sentence end ("... than
    apprehension. Yet these thoughts": music or silence after the speech read as the sentence's start again).
    The provider's guard judges only the words after a forced prefix, so it cannot see a restart whose opening
    is in the stable text: judged here on the whole utterance, and cut when all of it lies after the
    `promised` (stable) words."""
    cut = restart_tail(res.text)
    words = res.text.split()
    if not cut or len(words) - cut < max(promised, 1):
        return res
    return Result(text=" ".join(words[:-cut]), words=res.words[:len(words) - cut] if res.words else [],
                  language=res.language, duration_ms=res.duration_ms, segments=res.segments, logprobs=res.logprobs)
