"""The ISO 639-1 two-letter language codes (what a BCP-47 tag's two-letter primary subtag must be).

Three-letter primary subtags are ISO 639-2/3 codes (some 7,900: `yue`, `cmn`, `fil`, `haw`); the hub keeps
no copy of that list, so they are taken as they are and left to the provider's own list.
"""

from __future__ import annotations

ISO_639_1: frozenset[str] = frozenset("""
aa ab ae af ak am an ar as av ay az ba be bg bh bi bm bn bo br bs ca ce ch co cr cs cu cv cy da de dv dz ee el
en eo es et eu fa ff fi fj fo fr fy ga gd gl gn gu gv ha he hi ho hr ht hu hy hz ia id ie ig ii ik io is it iu
ja jv ka kg ki kj kk kl km kn ko kr ks ku kv kw ky la lb lg li ln lo lt lu lv mg mh mi mk ml mn mr ms mt my na
nb nd ne ng nl nn no nr nv ny oc oj om or os pa pi pl ps pt qu rm rn ro ru rw sa sc sd se sg si sk sl sm sn so
sq sr ss st su sv sw ta te tg th ti tk tl tn to tr ts tt tw ty ug uk ur uz ve vi vo wa wo xh yi yo za zh zu
""".split())

#: Withdrawn two-letter codes still met in the wild (BCP-47's registry keeps them as deprecated): Hebrew,
#: Indonesian, Yiddish, Javanese (Whisper's `jw`), Moldavian, Serbo-Croatian.
DEPRECATED_639_1: frozenset[str] = frozenset("iw in ji jw mo sh".split())


def is_known_language(primary: str) -> bool:
    """Is `primary` (a tag's primary subtag, lower case) a language: an ISO 639-1 code (current or
    withdrawn), or any three-letter code (ISO 639-2/3, not checked here)?"""
    if len(primary) == 2:
        return primary in ISO_639_1 or primary in DEPRECATED_639_1
    return len(primary) == 3
