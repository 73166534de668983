"""Which words of successive hypotheses of one utterance may be promised as stable text (LocalAgreement),
and how a decode of the utterance's last seconds joins onto them. Pure functions on word lists; the stream
adapter (`streaming.StreamAdapter._on_partial`) applies them."""

from __future__ import annotations

import re
from collections.abc import Iterable

_NORM = re.compile(r"[^\w']+")


def norm(word: str) -> str:
    """A word compared without case or punctuation."""
    return _NORM.sub("", word.lower())


def agreed_prefix(a: list[str], b: list[str]) -> int:
    """Number of leading words two hypotheses share (case and punctuation ignored)."""
    n = 0
    for x, y in zip(a, b, strict=False):
        if norm(x) != norm(y):
            break
        n += 1
    return n


def stitch(committed: list[str], tail: list[str], skip: int = 2) -> list[str]:
    """The words of a decode of the utterance's last seconds (prompted with the stable text) joined onto the
    stable text: a run of the tail's first words (from within its first `skip` + 1, the window may cut a
    word) that repeats the stable text's end is dropped; a tail without one continues the stable text."""
    ends = [norm(w) for w in committed]
    heads = [norm(w) for w in tail]
    for s in range(min(skip, len(tail)) + 1):
        for j in range(min(len(ends), len(tail) - s), 0, -1):
            if (j >= 2 or s == 0) and heads[s:s + j] == ends[len(ends) - j:]:
                return committed + tail[s + j:]
    return committed + tail


#: how many words a hypothesis may have read before an opening (see `read_after`), and how many of each
#: hypothesis' first words an utterance keeps to tell
OPENING_REACH = 2
OPENING_KEPT = OPENING_REACH + 2


def read_after(opening: list[str], openings: Iterable[list[str]]) -> bool:
    """Some hypothesis of the utterance (`openings`: each one's first `OPENING_KEPT` words) read `opening`,
    the first words about to be promised, with a word or two before it ("For although the Chinese" beside
    "Although the Chinese"). Whisper drops a short first word when the audio starts right on it (no
    pre-roll: a session's first sample), in some decodes and not others; two that dropped it agree as well
    as two that did not, and a promise without it is one no later decode can mend. So an opening that a
    hypothesis has read more words in front of is not promised until two successive ones agree on the longer
    reading (or never, and the final is free)."""
    head = [norm(w) for w in opening[:2]]
    if not head:
        return False
    for words in openings:
        seen = [norm(w) for w in words]
        if any(seen[s:s + len(head)] == head for s in range(1, OPENING_REACH + 1)):
            return True
    return False
