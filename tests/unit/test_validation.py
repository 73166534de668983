"""core.validation: the one set of checks every entry point makes on StartSession-like options."""

from __future__ import annotations

from typing import Any, get_args

import pytest

from asrhub.core.audio import Encoding
from asrhub.core.commands import AudioSpec, parse_start
from asrhub.core.config import LimitsConfig
from asrhub.core.errors import HubError
from asrhub.core.validation import request_options, validate_audio_spec, validate_idle_timeout
from asrhub.providers.checks import validate_language

LIMITS = LimitsConfig(max_sample_rate=96000, max_channels=2, idle_timeout_s=10)


class FakeProvider:
    def __init__(self, languages: tuple[str, ...]) -> None:
        from asrhub.providers.base import Capabilities
        self.name = "p"
        self.language = None
        self.capabilities = Capabilities(streaming=True, interim=True, word_timestamps=False, languages=languages)


def refused(fn: Any, *args: Any) -> HubError:
    with pytest.raises(HubError) as info:
        fn(*args)
    assert info.value.code.value == "invalid_command"
    return info.value


@pytest.mark.parametrize("encoding", get_args(Encoding))
def test_audio_ranges_hold_for_every_encoding(encoding: str) -> None:
    validate_audio_spec(AudioSpec(encoding=encoding, sample_rate=48000, channels=2), LIMITS)  # type: ignore[arg-type]
    for rate in (0, -1, 3999, 96001, 2**40):
        err = refused(validate_audio_spec, AudioSpec(encoding=encoding, sample_rate=rate), LIMITS)  # type: ignore[arg-type]
        assert "audio.sample_rate" in err.message and str(rate) in err.message and "96000" in err.message
    for channels in (0, -3, 3, 10**6):
        err = refused(validate_audio_spec, AudioSpec(encoding=encoding, channels=channels), LIMITS)  # type: ignore[arg-type]
        assert "audio.channels" in err.message and str(channels) in err.message


def test_idle_timeout_bound() -> None:
    assert validate_idle_timeout(None, LIMITS) == 10
    assert validate_idle_timeout(2.5, LIMITS) == 2.5
    assert validate_idle_timeout(10, LIMITS) == 10
    err = refused(validate_idle_timeout, 10.5, LIMITS)
    assert "limits.idle_timeout_s" in err.message and "10" in err.message
    for bad in (0, -1, "soon", True):
        with pytest.raises(HubError) as info:
            parse_start({"idle_timeout_s": bad})
        assert info.value.code.value == "invalid_command" and "idle_timeout_s" in info.value.message, bad


def test_language_against_the_provider() -> None:
    listed = FakeProvider(("en", "de"))
    for ok in (None, "", "auto", "en", "de", "EN", "en-GB", "de-AT"):  # BCP-47: case-insensitive, region ok
        validate_language(listed, ok)  # type: ignore[arg-type]
    for bad in ("ja", "fr", "fr-CA"):
        err = refused(validate_language, listed, bad)
        assert f"'{bad}'" in err.message and "en, de" in err.message
    validate_language(FakeProvider(("auto",)), "fil-PH")  # a provider that detects anything takes any language
    assert "BCP-47" in refused(validate_language, listed, "en_GB").message


def test_a_tag_of_no_known_language_is_refused_as_such() -> None:
    """`xx` is well-formed BCP-47 but no ISO 639 language: refused as not a language, before any provider
    is asked (not "provider ... does not support language 'xx'"), with the code of a malformed tag."""
    for bad in ("xx", "XX-EN", "qq-CN"):
        for provider in (FakeProvider(("auto",)), FakeProvider(("en",))):
            err = refused(validate_language, provider, bad)
            assert err.message == f"language '{bad}' is not a known language code (e.g. en, zh-CN, zh-TW) or 'auto'"
        err = refused(parse_start, {"language": bad})
        assert f"language '{bad}' is not a known language code" in err.message
    for ok in ("en", "zh-TW", "yue", "haw", "jw", "fil-PH", "iw"):  # three-letter and withdrawn codes pass
        validate_language(FakeProvider(("auto",)), ok)


def test_a_multilingual_whisper_lists_the_languages_it_knows() -> None:
    """A real language the multilingual Whisper lacks (Zulu) is refused listing the ~99 it has, not just
    "supports: auto"."""
    from asrhub.core.language import WHISPER_LANGUAGES
    from asrhub.providers.base import whisper_capabilities
    provider = FakeProvider(("auto",))
    provider.capabilities = whisper_capabilities(True, 1, hotwords=True)
    err = refused(validate_language, provider, "zu")
    listed = err.message.split("(supports: ", 1)[1].rstrip(")").split(", ")
    assert listed[0] == "auto" and set(listed[1:]) == WHISPER_LANGUAGES and "zu" not in listed, err.message


def test_request_options_parse_like_a_start() -> None:
    assert request_options(provider=None, language="en").language == "en"
    with pytest.raises(HubError) as info:
        request_options(language="x" * 40)
    assert info.value.code.value == "invalid_command" and "language" in info.value.message
    with pytest.raises(HubError) as info:
        request_options(audio={"encoding": "pcm_s24le"})
    assert info.value.code.value == "unsupported_encoding"
