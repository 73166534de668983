"""What the configured pipeline cannot run without, as for a default provider (`engine.provider_check`).

An operator the default pipeline enables (the Silero VAD of `pipeline.vad.kind: silero`, the turn model of
`pipeline.turn.mode: semantic`, the PocketSphinx wake word of `pipeline.wakeword.enabled: true`) that cannot
load makes every session fail. The hub logs it at WARNING with the fix, `/readyz` answers 503
(`operator_unavailable`) while it lasts, and `asrhub config check` exits 1.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from ..core.config import PipelineConfig
from ..core.errors import HubError


@dataclass(frozen=True)
class OperatorUnavailable:
    """An operator the configured pipeline needs that cannot load: `name` ("silero VAD"), the key that
    asks for it, why (the loader's message, which carries the install command), and the fix."""

    name: str
    key: str
    reason: str
    fix: str

    def describe(self) -> str:
        return f"the {self.name} ({self.key}) is unavailable: {self.reason}"


def _silero() -> None:
    from .vad_silero import get_session
    get_session()


def _wake_word(phrase: str) -> None:
    from .wakeword import check_phrase
    check_phrase(phrase)


def _turn(model_path: str) -> None:
    from .turn_model import get_runner
    get_runner(model_path or None).check()


@dataclass(frozen=True)
class Required:
    name: str
    key: str
    load: Callable[[], None]
    fix: str


def required_loaders(cfg: PipelineConfig) -> list[Required]:
    """Each operator the default pipeline of `cfg` needs."""
    out: list[Required] = []
    if cfg.vad.enabled and cfg.vad.kind == "silero":
        out.append(Required("silero VAD", "pipeline.vad.kind: silero", _silero,
                            "install what it names, or set pipeline.vad.kind: webrtc"))
    if cfg.wakeword.enabled and cfg.wakeword.kind == "pocketsphinx":
        out.append(Required("wake word", "pipeline.wakeword.enabled: true", lambda: _wake_word(cfg.wakeword.phrase),
                            "install what it names, or set pipeline.wakeword.enabled: false"))
    if cfg.turn.mode == "semantic":
        out.append(Required("turn model", "pipeline.turn.mode: semantic", lambda: _turn(cfg.turn.model_path),
                            "install what it names, or set pipeline.turn.mode: silence"))
    return out


def load_required(cfg: PipelineConfig) -> list[OperatorUnavailable]:
    """Load each required operator (blocking: run it off the loop); the ones that failed."""
    missing = []
    for r in required_loaders(cfg):
        try:
            r.load()
        except HubError as e:
            missing.append(OperatorUnavailable(r.name, r.key, e.message, r.fix))
        except Exception as e:  # a broken install (a corrupt model file): the same refusal, its own words
            missing.append(OperatorUnavailable(r.name, r.key, f"{type(e).__name__}: {e}", r.fix))
    return missing
