"""Language codes -> the lower-case English names OpenAI's verbose_json reports (`"language": "english"`).

The table covers the languages Whisper models know (ISO 639-1, plus `haw` and `yue`)."""

from __future__ import annotations

_TABLE = """
af afrikaans|am amharic|ar arabic|as assamese|az azerbaijani|ba bashkir|be belarusian|bg bulgarian|bn bengali
bo tibetan|br breton|bs bosnian|ca catalan|cs czech|cy welsh|da danish|de german|el greek|en english|es spanish
et estonian|eu basque|fa persian|fi finnish|fo faroese|fr french|gl galician|gu gujarati|ha hausa|haw hawaiian
he hebrew|hi hindi|hr croatian|ht haitian creole|hu hungarian|hy armenian|id indonesian|is icelandic|it italian
ja japanese|jw javanese|ka georgian|kk kazakh|km khmer|kn kannada|ko korean|la latin|lb luxembourgish|ln lingala
lo lao|lt lithuanian|lv latvian|mg malagasy|mi maori|mk macedonian|ml malayalam|mn mongolian|mr marathi|ms malay
mt maltese|my myanmar|ne nepali|nl dutch|nn nynorsk|no norwegian|oc occitan|pa punjabi|pl polish|ps pashto
pt portuguese|ro romanian|ru russian|sa sanskrit|sd sindhi|si sinhala|sk slovak|sl slovenian|sn shona|so somali
sq albanian|sr serbian|su sundanese|sv swedish|sw swahili|ta tamil|te telugu|tg tajik|th thai|tk turkmen
tl tagalog|tr turkish|tt tatar|uk ukrainian|ur urdu|uz uzbek|vi vietnamese|yi yiddish|yo yoruba|yue cantonese
zh chinese
"""

NAMES: dict[str, str] = dict(item.split(" ", 1) for item in _TABLE.replace("\n", "|").split("|") if item.strip())
CODES: dict[str, str] = {name: code for code, name in NAMES.items()}


def language_name(code: str | None) -> str:
    """`en` -> `english`; a BCP-47 tag by its primary subtag (`zh-TW` -> `chinese`); unknown codes unchanged."""
    if not code:
        return ""
    primary = code.split("-")[0].split("_")[0].lower()
    return NAMES.get(primary, code)


def language_code(value: str | None) -> str | None:
    """A request's `language`: an ISO code as given, or an English name (`english`) mapped to its code."""
    if not value:
        return None
    return CODES.get(value.strip().lower(), value.strip())
