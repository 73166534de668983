"""What a session opens with: the provider its start runs on, and its data plane (pipeline and `Session`).

Shared by a new session (`SessionService.start_session`) and one taken over from a dead node
(`SessionService.take_over`); they differ in the channel and the timeline the plane goes on from."""

from __future__ import annotations

from ..core.channel import EventChannel
from ..core.commands import StartSession
from ..core.config import HubConfig
from ..operators.pipeline import Pipeline, build_spec
from ..providers.base import Provider
from ..providers.registry import ProviderSet
from .session import Session


def pick_provider(providers: ProviderSet, cmd: StartSession) -> tuple[Provider, bool]:
    """The provider `cmd` runs on (providers.routes), and whether the session is routed by the language of
    its speech (it names no provider and no language, or `auto`): such a session starts where the default
    provider's language routes, so partials flow at once."""
    detect = providers.detects(cmd.provider, cmd.language, cmd.task)
    default = providers.providers.get(providers.config.default)
    language = (default.language if default is not None else None) if detect else cmd.language
    return providers.for_request(cmd.provider, language, cmd.task), detect


def new_plane(session_id: str, cmd: StartSession, config: HubConfig, channel: EventChannel) -> Session:
    """The session's data plane: its pipeline as `cmd` asks over the config's, its channel, its ring buffer."""
    pipeline = Pipeline(build_spec(cmd.audio, cmd.vad, config.pipeline, cmd.wakeword, cmd.record, cmd.turn),
                        session_id)
    return Session(session_id, cmd, pipeline, channel, config.limits.max_session_buffer_s)
