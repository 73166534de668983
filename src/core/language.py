"""Language tags (DESIGN §3.1): BCP-47 in, the model's language code and the output script out.

`zh`, `zh-CN`, `zh-Hans` ask for Simplified Chinese text; `zh-TW`, `zh-HK`, `zh-MO`, `zh-Hant` for
Traditional. `auto` means "detect per utterance". Everything else maps to its primary subtag
(`en-US` -> `en`), which is what a Whisper-like model is told.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Literal

from .errors import ClientError, ErrorCode, HubError
from .iso639 import is_known_language

Script = Literal["Hans", "Hant"]

AUTO = "auto"

#: The languages Whisper models know (their `<|xx|>` tokens).
WHISPER_LANGUAGES: frozenset[str] = frozenset(
    "af am ar as az ba be bg bn bo br bs ca cs cy da de el en es et eu fa fi fo fr gl gu ha haw he hi hr ht hu "
    "hy id is it ja jw ka kk km kn ko la lb ln lo lt lv mg mi mk ml mn mr ms mt my ne nl nn no oc pa pl ps pt "
    "ro ru sa sd si sk sl sn so sq sr su sv sw ta te tg th tk tl tr tt uk ur uz vi yi yo zh yue".split())

_TAG = re.compile(r"^[A-Za-z]{2,3}(?:-[A-Za-z0-9]{1,8})*$")
_TRADITIONAL_REGIONS = frozenset({"TW", "HK", "MO"})


@dataclass(frozen=True)
class LanguageTag:
    tag: str            # as the client wrote it, case-normalised (`zh-TW`)
    code: str           # primary subtag, lower case (`zh`), or "auto"
    script: Script | None = None  # the Chinese script asked for (None: not Chinese, or no preference)

    @property
    def is_auto(self) -> bool:
        return self.code == AUTO


def parse_language(tag: str) -> LanguageTag:
    """Parse a BCP-47 tag or `auto`; a malformed one, or one whose two-letter primary subtag is no ISO
    639-1 language (`xx`), is `invalid_command`."""
    t = tag.strip()
    if t.lower() == AUTO:
        return LanguageTag(AUTO, AUTO)
    if not _TAG.match(t):
        raise ClientError(ErrorCode.invalid_command, f"language '{tag}' is not a BCP-47 tag (e.g. en, zh-CN, zh-TW) "
                       "or 'auto'")
    parts = t.split("-")
    code = parts[0].lower()
    if not is_known_language(code):
        raise ClientError(ErrorCode.invalid_command, f"language '{tag}' is not a known language code (e.g. en, "
                          "zh-CN, zh-TW) or 'auto'")
    subtags = parts[1:]
    norm = [code]
    script: Script | None = None
    for s in subtags:
        if len(s) == 4 and s.isalpha():
            norm.append(s.title())
            if s.title() in ("Hans", "Hant"):
                script = "Hans" if s.title() == "Hans" else "Hant"
        elif len(s) in (2, 3) and (s.isalpha() or s.isdigit()):
            norm.append(s.upper())
            if script is None and s.upper() in _TRADITIONAL_REGIONS:
                script = "Hant"
        else:
            norm.append(s.lower())
    if code in ("zh", "cmn", "yue"):
        if code == "cmn":
            code = "zh"
        script = script or ("Hant" if code == "yue" else "Hans")
    else:
        script = None
    return LanguageTag("-".join(norm), code, script)


def script_for(language: str | None) -> Script | None:
    """The Chinese script text in `language` (a tag or a detected code) should be written in."""
    if not language or language == AUTO:
        return None
    try:
        return parse_language(language).script
    except HubError:
        return None


def model_language(language: str | None) -> str | None:
    """What a model is told: the primary subtag (`zh-TW` -> `zh`), "auto", or None."""
    if not language:
        return None
    try:
        return parse_language(language).code
    except HubError:
        return language
