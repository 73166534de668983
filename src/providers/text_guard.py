"""Checks on a hypothesis' text that tell a degenerate final from speech (issue 11): decoding loops,
readings of the prompt or of earlier text, and what Whisper-family models write on non-speech.
Pure functions on text, shared by the providers' decode paths and the stream adapter."""

from __future__ import annotations

import difflib
import re
import zlib

from .text_join import join_words


def compression_ratio(text: str) -> float:
    b = text.encode("utf-8")
    return len(b) / max(1, len(zlib.compress(b)))


_CJK = re.compile(r"[\u3040-\u30ff\u3400-\u4dbf\u4e00-\u9fff\uac00-\ud7af\uf900-\ufaff]")


def count_words(text: str) -> int:
    """Words for comparing lengths across hypotheses: space-separated tokens, each CJK character one
    word (Chinese and Japanese are written without spaces)."""
    return sum(max(1, len(_CJK.findall(tok))) for tok in text.split())


def _words(text: str) -> list[str]:
    return [w for w in (re.sub(r"[^\w']", "", x.lower()) for x in text.split()) if w]


def repeat_run(text: str, max_period: int = 4) -> int:
    """Longest run of one word or n-gram (n <= max_period) repeated back to back, in copies:
    "he's, he's, he's, he's" -> 4, "a b a b a b" -> 3, ordinary text -> 1."""
    norm = _words(text)
    best = 1
    for p in range(1, max_period + 1):
        i = 0
        while i + 2 * p <= len(norm):
            k = 1
            while i + (k + 1) * p <= len(norm) and norm[i + k * p:i + (k + 1) * p] == norm[i:i + p]:
                k += 1
            best = max(best, k)
            i += p * (k - 1) + 1 if k > 1 else 1
    return best


def collapse_repeats(text: str, max_period: int = 4, keep: int = 1) -> str:
    """Cut every back-to-back run of a word or n-gram repeated 3+ times down to `keep` copies."""
    words = text.split()
    norm = [re.sub(r"[^\w']", "", w.lower()) for w in words]
    changed = True
    while changed:
        changed = False
        for p in range(1, max_period + 1):
            for i in range(0, len(norm) - 3 * p + 1):
                k = 1
                while i + (k + 1) * p <= len(norm) and norm[i + k * p:i + (k + 1) * p] == norm[i:i + p]:
                    k += 1
                if k >= 3 and any(norm[i:i + p]):
                    cut = slice(i + keep * p, i + k * p)
                    del words[cut], norm[cut]
                    changed = True
                    break
            if changed:
                break
    return " ".join(words)


def echoes(text: str, prompt: str | None, min_words: int = 3) -> bool:
    """The hypothesis repeats the previous text it was prompted with: Whisper's way of "reading" the
    prompt into silence or noise. True when its words (at least `min_words`, or all of a shorter
    hypothesis of 2+ words) appear in the same order, back to back, in the prompt."""
    if not prompt:
        return False
    hyp, ctx = _words(text), _words(prompt)
    n = len(hyp) if len(hyp) < min_words else min_words
    if n < 2 or len(ctx) < n:
        return False
    grams = {tuple(ctx[i:i + n]) for i in range(len(ctx) - n + 1)}
    hits = sum(1 for i in range(len(hyp) - n + 1) if tuple(hyp[i:i + n]) in grams)
    return hits >= max(1, (len(hyp) - n + 1) // 2)


# what Whisper writes on applause, music, noise and silence (its subtitle-trained habits); a final that is
# one of these only stands when the decoder is sure there is speech
NON_SPEECH_PHRASES = frozenset({
    "thank you", "thank you very much", "thanks for watching", "thank you for watching", "thanks for listening",
    "thank you for listening", "please subscribe", "subscribe", "like and subscribe", "you", "bye", "bye bye",
    "the end", "music", "applause", "laughter", "silence", "so", "oh", "uh", "um", "hmm", "i", "a", "okay",
})


def non_speech_phrase(text: str) -> bool:
    return " ".join(_words(text)) in NON_SPEECH_PHRASES


def restart_tail(text: str) -> int:
    """Words at the end that start the hypothesis over: after the last sentence end (". ? !") an unfinished
    sentence that repeats its opening words ("Go forward 10 meters. Go forward 10"), Whisper's habit on the
    silence after a short utterance. Returns how many trailing words that is (0: none)."""
    words = text.split()
    ends = [i for i, w in enumerate(words[:-1]) if w.endswith((".", "?", "!"))]
    if not ends:
        return _bare_restart(words)
    if words[-1].endswith((".", "?", "!")):
        return 0
    tail = _words(" ".join(words[ends[-1] + 1:]))
    head = _words(" ".join(words[:ends[-1] + 1]))
    if tail and len(tail) < len(head) and head[:len(tail)] == tail:
        return len(words) - ends[-1] - 1
    return 0


def _bare_restart(words: list[str]) -> int:
    """With no sentence end: the utterance's opening words (2 or more) said again at its end, with other words
    between ("go forward 10 meters go forward 10"). Returns how many trailing words that is (0: none)."""
    bare = [_bare(w) for w in words]
    for k in range(len(bare) // 2, 1, -1):  # the longest restart first; the middle keeps at least one word
        if len(bare) - 2 * k >= 1 and bare[-k:] == bare[:k] and all(bare[:k]):
            return k
    return 0


def _bare(word: str) -> str:
    return re.sub(r"[^\w']", "", word.lower())


def carry_stable(stable: str, text: str) -> str:
    """`text` made to start with `stable` exactly (stable text is a promise: later text never takes it
    back). Unchanged when it already does. Otherwise the stable words replace the words of `text` they line
    up with (case and punctuation ignored; a word-level alignment where they differ) and the words of
    `text` after them follow; punctuation the final put on the last stable word is kept ("sense" ->
    "sense,"). A `text` without the stable words' continuation is `stable` itself."""
    stable = stable.strip()
    if not stable or text.startswith(stable):
        return text
    s_words, t_words = stable.split(), text.split()
    a, b = [_bare(w) for w in s_words], [_bare(w) for w in t_words]
    end = 0  # index in t_words just after the part that lines up with the stable words
    for tag, i1, i2, j1, j2 in difflib.SequenceMatcher(None, a, b, autojunk=False).get_opcodes():
        if i2 == len(a) and i1 < i2:  # the opcode that covers the last stable word
            end = j1 if tag == "delete" else j1 + min(j2 - j1, i2 - i1)
            break
    head = stable
    if 0 < end <= len(t_words) and b[end - 1] == a[-1] and t_words[end - 1].startswith(s_words[-1]):
        head = stable + t_words[end - 1][len(s_words[-1]):]
    return join_words([head, *t_words[end:]])
