"""Joining recognised pieces (words, segments, committed prefixes) into one text. Latin-script words are
joined with a space; pieces in scripts written without spaces between words (Chinese, Japanese, Thai, Lao,
Khmer, Burmese) are joined with nothing where both sides are such characters, so streamed Mandarin reads
"广州市佛地产" as the offline decode does, not "广州市 佛地产"."""

from __future__ import annotations

from collections.abc import Iterable

#: code point ranges of scripts written without spaces between words, and their full-width punctuation
_NO_SPACE = (
    (0x0E00, 0x0EFF),  # Thai, Lao
    (0x1000, 0x109F),  # Myanmar
    (0x1780, 0x17FF),  # Khmer
    (0x2E80, 0x2FDF),  # CJK radicals, Kangxi
    (0x3000, 0x303F),  # CJK symbols and punctuation (、。「」)
    (0x3040, 0x30FF),  # Hiragana, Katakana
    (0x3100, 0x31FF),  # Bopomofo, Katakana extensions
    (0x3400, 0x4DBF),  # CJK extension A
    (0x4E00, 0x9FFF),  # CJK unified ideographs
    (0xF900, 0xFAFF),  # CJK compatibility ideographs
    (0xFF00, 0xFFEF),  # full-width forms (，！？：)
    (0x20000, 0x3134F),  # CJK extensions B-G
)


def no_space(ch: str) -> bool:
    """The character belongs to a script written without spaces between words."""
    cp = ord(ch)
    return any(lo <= cp <= hi for lo, hi in _NO_SPACE)


def join_words(pieces: Iterable[str]) -> str:
    """The pieces as one text: a space between two pieces unless both sides of the join are characters of a
    script written without spaces. Each piece is stripped first; empty pieces are left out."""
    out = ""
    for piece in pieces:
        piece = piece.strip()
        if not piece:
            continue
        if out and not (no_space(out[-1]) and no_space(piece[0])):
            out += " "
        out += piece
    return out
