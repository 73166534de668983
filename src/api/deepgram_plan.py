"""What a /v1/listen query string asks of the hub (DESIGN §3.8): the provider and its options (both
routes), the live session's StartSession, and containerised audio's container from its first bytes."""

from __future__ import annotations

from dataclasses import dataclass

from pydantic import ValidationError

from ..core.commands import AudioSpec, StartSession, VadOptions
from ..core.errors import ClientError, ErrorCode, HubError
from ..core.language import parse_language
from ..providers.base import Provider
from ..providers.checks import validate_features, validate_language
from . import deepgram_wire as dg
from .openai_models import resolve_model, routed_start

# Deepgram's endpointing of 10-25 ms (its default, livekit's) cuts Whisper's utterances at every pause
# between words, and each piece is decoded alone: below this, an utterance ends after this much silence
MIN_ENDPOINTING_MS = 300
SAMPLE_BYTES = {"pcm_s16le": 2, "pcm_f32le": 4, "pcm_mulaw": 1, "pcm_alaw": 1}
MAGIC = ((b"RIFF", "wav"), (b"fLaC", "flac"), (b"OggS", "ogg"), (b"\x1a\x45\xdf\xa3", "webm"), (b"ID3", "mp3"))


def sniff(head: bytes) -> AudioSpec:
    """Containerised audio (no `encoding`): its container, from its first bytes."""
    for magic, encoding in MAGIC:
        if head.startswith(magic):
            return AudioSpec(encoding=encoding)  # type: ignore[arg-type]
    if len(head) > 1 and head[0] == 0xFF and head[1] & 0xE0 == 0xE0:
        return AudioSpec(encoding="mp3")
    raise ClientError(ErrorCode.unsupported_encoding, "the audio is not in a container this hub knows (wav, flac, "
                      "ogg, webm, mp3): give raw audio's encoding and sample_rate in the query string")


@dataclass(frozen=True)
class Choice:
    """What the common parameters ask of the hub: the provider and its options."""

    provider: Provider
    model: str | None               # the hub's name for it (None: the hub's choice)
    language: str | None            # a BCP-47 tag, "auto" (detect) or None (the provider's default)
    hotwords: list[str] | None
    prompt: str | None


def choose(hub: object, p: dg.CommonParams, detect: bool = False) -> Choice:
    """The provider and options the query string asks for; a refusal names the parameter."""
    model = None if p.model is not None and dg.DEEPGRAM_MODEL.match(p.model) else p.model
    language = "auto" if p.language == "multi" or (detect and p.language is None) else p.language
    try:
        if language is not None:
            parse_language(language)  # a malformed tag is the language's fault, not the model's routing
    except HubError as e:
        raise dg.ListenRefused(400, "INVALID_QUERY_PARAMETER", f"language: {e.message}", "language") from None
    try:
        provider = resolve_model(hub, model, None if language == "auto" else language)
    except HubError as e:
        raise dg.ListenRefused(400, "INVALID_QUERY_PARAMETER", f"model: {e.message}", "model") from None
    try:
        validate_language(provider, language)
    except HubError as e:
        raise dg.ListenRefused(400, "INVALID_QUERY_PARAMETER", f"language: {e.message}", "language") from None
    terms = p.terms()
    caps = provider.capabilities
    hotwords = terms if terms and caps.hotwords else None
    prompt = ", ".join(terms) if terms and not caps.hotwords and caps.prompt else None
    try:
        validate_features(provider, hotwords=hotwords or (terms if prompt is None else None))
    except HubError as e:
        name = "keyterm" if p.keyterm else "keywords"
        raise dg.ListenRefused(400, "INVALID_QUERY_PARAMETER", f"{name}: {e.message}", name) from None
    return Choice(provider, model, language, hotwords, prompt)


def plan(hub: object, p: dg.ListenParams) -> tuple[StartSession, Provider]:
    """The hub session the query string asks for; a refusal names the parameter."""
    c = choose(hub, p)
    audio = AudioSpec(encoding=dg.ENCODINGS[p.encoding], sample_rate=p.sample_rate or 16000,
                      channels=p.channels or 1) if p.encoding else AudioSpec()
    vad = VadOptions(enabled=p.endpointing is not False)
    if not isinstance(p.endpointing, bool):
        vad = VadOptions(silence_ms=max(MIN_ENDPOINTING_MS, min(10_000, p.endpointing)))
    try:
        start = StartSession(provider=c.provider.name, language=c.language, audio=audio,
                             interim_results=p.interim_results, word_timestamps=c.provider.capabilities.word_timestamps,
                             hotwords=c.hotwords, prompt=c.prompt, vad=vad)
    except ValidationError as e:
        err = e.errors()[0]
        name = query_name(p, tuple(str(x) for x in err["loc"]))
        raise dg.ListenRefused(400, "INVALID_QUERY_PARAMETER", f"{name}: {err['msg']}", name) from None
    return routed_start(hub, c.model, start), c.provider


def query_name(p: dg.ListenParams, loc: tuple[str, ...]) -> str:
    """The query parameter a refused field of the hub session came from."""
    head = loc[0] if loc else ""
    if head in ("hotwords", "prompt"):
        return "keyterm" if p.keyterm else "keywords"
    if head == "audio" and len(loc) > 1:
        return {"sample_rate": "sample_rate", "channels": "channels"}.get(loc[1], "encoding")
    return {"vad": "endpointing", "language": "language", "interim_results": "interim_results"}.get(head, head)
