"""Checks on a hypothesis' text that tell a degenerate final from speech (issue 11): decoding loops,
readings of the prompt or of earlier text, and what Whisper-family models write on non-speech.
Pure functions on text, shared by the providers' decode paths and the stream adapter."""

from __future__ import annotations

import difflib
import re
import zlib

from .base import Result, TranscribeOptions
from .text_join import join_words


def compression_ratio(text: str) -> float:
    b = text.encode("utf-8")
    return len(b) / max(1, len(zlib.compress(b)))


_CJK = re.compile(r"[\u3040-\u30ff\u3400-\u4dbf\u4e00-\u9fff\uac00-\ud7af\uf900-\ufaff]")


def count_words(text: str) -> int:
    """Words for comparing lengths across hypotheses: space-separated tokens, each CJK character one
    word (Chinese and Japanese are written without spaces)."""
    return sum(max(1, len(_CJK.findall(tok))) for tok in text.split())


def bare_words(text: str) -> list[str]:
    """The text's words without case or punctuation, those left empty (a lone dash) dropped."""
    return [w for w in (bare(x) for x in text.split()) if w]


def repeat_run(text: str, max_period: int = 4) -> int:
    """Longest run of one word or n-gram (n <= max_period) repeated back to back, in copies:
    "he's, he's, he's, he's" -> 4, "a b a b a b" -> 3, ordinary text -> 1."""
    norm = bare_words(text)
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


# scripts written without spaces between words: each character is a token (kana, Han, Thai)
_CHAR_SCRIPT = "\u0e00-\u0e7f\u3040-\u30ff\u3400-\u4dbf\u4e00-\u9fff\uf900-\ufaff"
_TOKEN = re.compile(rf"[{_CHAR_SCRIPT}]|[^\W_{_CHAR_SCRIPT}]+(?:'[^\W_{_CHAR_SCRIPT}]+)*")
_CHAR_TOKEN = re.compile(rf"[{_CHAR_SCRIPT}]")


def tokens(text: str) -> list[str]:
    """The text's tokens in any script: words where words are spaced, single characters where they are not
    (Chinese, Japanese, Thai); lower case, punctuation dropped."""
    return _TOKEN.findall(text.lower())


def loops(text: str) -> bool:
    """A decoding loop in any script: a word or n-gram (n <= 4 words) said 3+ times back to back, or in
    unspaced scripts a run of 2-10 characters 3+ times ("作曲作曲作曲") or one character 5+ times (3 is still
    speech: "哈哈哈", "好好好")."""
    toks = tokens(text)
    for p in range(1, 11):
        for i in range(0, len(toks) - 2 * p):
            unit = toks[i:i + p]
            k = 1
            while toks[i + k * p:i + (k + 1) * p] == unit:
                k += 1
            chars = all(_CHAR_TOKEN.fullmatch(u) for u in unit)
            if p <= 4 and not chars and k >= 3:
                return True
            if chars and k >= (5 if p == 1 else 3):
                return True
    return False


def self_repeat(text: str) -> bool:
    """The whole utterance is one phrase said again ("in 1813. In 1813.", "8. The Press Yard. 8. The Press"):
    its tokens repeat with a period of 2 or more tokens, the second copy at least 2 tokens (or all of the
    phrase). Whisper's habit on the silence after a short utterance; genuine repeats exist ("New York, New
    York"), so this asks for a second decode, not a cut."""
    toks = tokens(text)
    for p in range(2, len(toks) // 2 + 2):
        rest = len(toks) - p
        if rest < min(2, p) or rest > p * 2:
            continue
        if all(toks[i] == toks[i % p] for i in range(p, len(toks))):
            return True
    return False


def one_copy(text: str) -> str:
    """The text of a self-repeat (self_repeat) cut to its first copy: as many leading words as make up one
    period of its tokens (spaced scripts), or characters (unspaced)."""
    toks = tokens(text)
    for p in range(2, len(toks) // 2 + 2):
        rest = len(toks) - p
        if rest >= min(2, p) and rest <= p * 2 and all(toks[i] == toks[i % p] for i in range(p, len(toks))):
            seen = 0
            for m in _TOKEN.finditer(text.lower()):
                seen += 1
                if seen == p:
                    return text[:m.end()] + _trailing_punct(text, m.end())
    return text


def _trailing_punct(text: str, at: int) -> str:
    m = re.match(r"[.?!,。？！，]", text[at:])
    return m.group(0) if m else ""


def collapse_loops(text: str) -> str:
    """`collapse_repeats` for every script: unspaced runs of 2-10 characters repeated 3+ times, and single
    characters repeated 5+ times, are cut to one copy too."""
    text = re.sub(rf"([{_CHAR_SCRIPT}]{{2,10}}?)\1{{2,}}", r"\1", text)
    text = re.sub(rf"([{_CHAR_SCRIPT}])\1{{4,}}", r"\1", text)
    return collapse_repeats(text)


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
    prompt into silence or noise (Mandarin over music: "中间协会分析" after "广州市房地产中介协会分析"). True when
    its tokens (words, or characters in unspaced scripts: at least `min_words`, or all of a shorter
    hypothesis of 2+) appear in the same order, back to back, in the prompt."""
    if not prompt:
        return False
    hyp, ctx = tokens(text), tokens(prompt)
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


# the same habits in other languages (subtitle credits, "thanks for watching", "like and subscribe"): a final
# that is one of these, or ends with one, only stands when the decoder is sure there is speech under it
NON_SPEECH_PATTERNS = re.compile("|".join([
    r"字幕[由:：]?.{0,20}(提供|制作)?", r"(中文)?字幕(组|志愿者)?.{0,12}", r"(谢谢|感谢)(观看|收看|收听|大家)",
    r"请不吝点赞.{0,20}", r"(点赞|订阅|转发|打赏).{0,4}(订阅|转发|打赏|支持).{0,20}", r"明镜与点点栏目",
    r"(作词|作曲|编曲|演唱|词曲|監製|监制)[:：]?", r"ご視聴ありがとうございました", r"チャンネル登録.{0,10}",
    r"시청해\s?주셔서\s?감사합니다", r"구독과\s?좋아요.{0,10}",
]))
_PUNCT_SPACE = re.compile(r"[\s.,!?;:，。！？、；：…\-—~～]+")


def non_speech_phrase(text: str) -> bool:
    """The whole text is something Whisper writes on non-speech, in English or another language."""
    if " ".join(bare_words(text)) in NON_SPEECH_PHRASES:
        return True
    bare = _PUNCT_SPACE.sub("", text)
    return bool(bare) and _only_non_speech(bare)


def _only_non_speech(bare: str) -> bool:
    return _phrases(bare) > 0


def _phrases(bare: str) -> int:
    """How many non-speech phrases `bare` (no spaces or punctuation) is made of; 0 if it is not only those."""
    pos = n = 0
    while pos < len(bare):
        m = NON_SPEECH_PATTERNS.match(bare, pos)
        if m is None or m.end() == pos:
            return 0
        pos, n = m.end(), n + 1
    return n


def non_speech_tail(text: str) -> int:
    """Characters at the end of the text that are a run of two or more non-speech phrases in an unspaced
    script after speech ("...旗舰店作词作曲作曲"): the credits Whisper adds on music or silence after the words.
    One such phrase alone may be speech ("这首歌的作曲"): the decoder's confidence decides that (a segment of
    its own). 0: none."""
    bare_end = len(text.rstrip(" .,!?;:，。！？、；：…"))
    for start in range(1, bare_end):
        if not _CHAR_TOKEN.match(text[start]):
            continue
        if _phrases(_PUNCT_SPACE.sub("", text[start:bare_end])) >= 2:
            return len(text) - start
    return 0


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
    tail = bare_words(" ".join(words[ends[-1] + 1:]))
    head = bare_words(" ".join(words[:ends[-1] + 1]))
    if tail and len(tail) < len(head) and head[:len(tail)] == tail:
        return len(words) - ends[-1] - 1
    return 0


def _bare_restart(words: list[str]) -> int:
    """With no sentence end: the utterance's opening words (2 or more) said again at its end, with other words
    between ("go forward 10 meters go forward 10"). Returns how many trailing words that is (0: none)."""
    plain = [bare(w) for w in words]
    for k in range(len(plain) // 2, 1, -1):  # the longest restart first; the middle keeps at least one word
        if len(plain) - 2 * k >= 1 and plain[-k:] == plain[:k] and all(plain[:k]):
            return k
    return 0


def bare(word: str) -> str:
    """A word without case or punctuation."""
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
    a, b = [bare(w) for w in s_words], [bare(w) for w in t_words]
    end = 0  # index in t_words just after the part that lines up with the stable words
    for tag, i1, i2, j1, j2 in difflib.SequenceMatcher(None, a, b, autojunk=False).get_opcodes():
        if i2 == len(a) and i1 < i2:  # the opcode that covers the last stable word
            end = j1 if tag == "delete" else j1 + min(j2 - j1, i2 - i1)
            break
    head = stable
    if 0 < end <= len(t_words) and b[end - 1] == a[-1] and t_words[end - 1].startswith(s_words[-1]):
        head = stable + t_words[end - 1][len(s_words[-1]):]
    return join_words([head, *t_words[end:]])


def tidy(r: Result, opts: TranscribeOptions) -> None:
    """What a second decode may still hold, cut in place: loops to one copy, a restart of the opening words,
    credits after the words, and (judged without a forced prefix) the whole text said twice, to one copy."""
    text = r.text
    if loops(text):
        text = collapse_loops(text)
    if cut := restart_tail(text):
        text = " ".join(text.split()[:-cut])
    if cut := non_speech_tail(text):
        text = text[:-cut].rstrip()
    if not opts.prefix and self_repeat(text):
        text = one_copy(text)
    if text != r.text:
        r.text = text
        r.words = r.words[:len(text.split())] if r.words and " " in text else []


def drop_unsure_tail(r: Result) -> Result:
    """A last segment that is only a non-speech phrase ("谢谢观看", "Thanks for watching.") after other
    segments, where the decoder was not sure of speech under it (no-speech probability over 0.2 or mean
    log-probability under -0.7): dropped from the text and the words."""
    if len(r.segments) < 2:
        return r
    last = r.segments[-1]
    unsure = (last.no_speech_prob or 0.0) > 0.2 or (last.avg_logprob or 0.0) < -0.7
    body = last.text.strip()
    if not (body and unsure and non_speech_phrase(body) and r.text.rstrip().endswith(body)):
        return r
    text = r.text.rstrip()[:-len(body)].rstrip()
    words = [w for w in r.words if w.start_ms < last.start * 1000] if r.words else []
    return Result(text=text, words=words, language=r.language, duration_ms=r.duration_ms,
                  segments=r.segments[:-1], logprobs=r.logprobs)
