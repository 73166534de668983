"""Configuration: YAML -> validated pydantic models.

Precedence, lowest first: the models' defaults < the file (`ASRHUB_CONFIG`, else the embedded
default) < `ASRHUB_<SECTION>__<KEY>` environment variables < command-line flags (applied by the CLI).
`${ENV}` / `${ENV:default}` are substituted in the file's values. An environment override names a
section and a key joined by double underscores (more `__` = deeper nesting; the value is parsed as
YAML). Other `ASRHUB_*` variables (`ASRHUB_URL`, `ASRHUB_API_KEY`, ... which clients use) are not
config: they are ignored with a debug line. Unknown keys are errors naming the key, never silently
ignored.
"""

from __future__ import annotations

import logging
import os
import re
from collections.abc import Mapping
from pathlib import Path
from typing import Any, Literal

import yaml
from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    PrivateAttr,
    ValidationError,
    field_validator,
    model_validator,
)

from .resources import resource

DEFAULT_CONFIG_PATH = resource("config/config.yaml")  # packaged in a wheel, config/ in a checkout
ENV_PREFIX = "ASRHUB_"
CONFIG_ENV = ENV_PREFIX + "CONFIG"  # names the config file when --config is not given
log = logging.getLogger(__name__)


class Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", validate_assignment=True)


class ApiKey(Strict):
    key: str
    name: str = ""
    max_sessions: int | None = None
    requests_per_minute: int | None = None


class AuthConfig(Strict):
    api_keys: list[ApiKey] = Field(default_factory=list)
    # short-lived tokens (POST /v1/tokens): HMAC secret; unset = a random one per process (tokens then do not
    # survive a restart and are not accepted by another node)
    token_secret: str | None = Field(None, min_length=16)
    token_ttl_max_s: int = Field(3600, ge=1, le=86_400)
    token_ttl_default_s: int = Field(60, ge=1, le=86_400)


class TlsConfig(Strict):
    """PEM certificate chain and private key; both set = HTTPS/WSS on `port` and TLS on `grpc_port`."""

    cert: str | None = None
    key: str | None = None

    @model_validator(mode="after")
    def _both_or_neither(self) -> TlsConfig:
        if bool(self.cert) != bool(self.key):
            raise ValueError("tls needs both 'cert' and 'key' (PEM files), or neither")
        return self

    @property
    def enabled(self) -> bool:
        return bool(self.cert and self.key)


class ServerConfig(Strict):
    host: str = "127.0.0.1"
    port: int = Field(8000, ge=0, le=65535)
    grpc_port: int = Field(50051, ge=0, le=65535)
    grpc_enabled: bool = True
    allowed_origins: list[str] = Field(default_factory=lambda: ["*"])
    auth: AuthConfig = Field(default_factory=AuthConfig)
    frontend_dir: str | None = None
    shutdown_grace_s: float = Field(10.0, ge=0)
    max_header_bytes: int = Field(32_768, ge=1024)  # request headers in total (names + values); over: 431
    max_headers: int = Field(100, ge=8)             # request header lines; over: 431
    header_timeout_s: float = Field(30.0, gt=0)     # a request head must be complete within this; else 408
    watch_config: bool = True  # reload providers and pipeline defaults when the config file changes
    tls: TlsConfig = Field(default_factory=TlsConfig)


class LimitsConfig(Strict):
    max_sessions: int = Field(64, ge=1)
    max_sessions_per_key: int = Field(32, ge=1)
    max_message_bytes: int = Field(1_048_576, ge=1024)
    max_session_buffer_s: float = Field(60.0, gt=0)
    max_session_s: float = Field(4 * 3600.0, gt=0)
    idle_timeout_s: float = Field(30.0, gt=0)
    resume_window_s: float = Field(30.0, ge=0)
    max_events_buffered: int = Field(4096, ge=64)
    admission_lag_s: float = Field(2.0, gt=0)  # refuse new sessions while finals trail audio by more
    max_sample_rate: int = Field(192_000, ge=8000)
    max_channels: int = Field(8, ge=1)
    replay_audio_s: float = Field(30.0, ge=0)  # a node taking over a session asks for at most this much audio again


class AudioConfig(Strict):
    sample_rate: Literal[16000] = 16000


class VadConfig(Strict):
    enabled: bool = True
    kind: Literal["webrtc", "silero"] = "webrtc"
    aggressiveness: int = Field(2, ge=0, le=3)
    threshold: float = Field(0.5, gt=0, lt=1)
    frame_ms: Literal[10, 20, 30] = 30
    min_speech_ms: int = Field(150, ge=0)
    silence_ms: int = Field(450, ge=50)
    pre_roll_ms: int = Field(300, ge=0)
    max_utterance_s: float = Field(25.0, gt=1)


class WakewordConfig(Strict):
    enabled: bool = False
    kind: Literal["pocketsphinx", "openwakeword"] = "pocketsphinx"
    phrase: str = "hey hub"
    threshold: float = 1e-20
    window_s: float = Field(8.0, gt=0)
    model_paths: list[str] = Field(default_factory=list)


class RecorderConfig(Strict):
    enabled: bool = False
    folder: str = "recordings"
    per: Literal["session", "utterance"] = "session"
    max_total_mb: float = Field(500.0, gt=0)


class TurnConfig(Strict):
    """When an utterance ends: `silence` after vad.silence_ms; `semantic` when the turn model (Smart Turn v3.2,
    from the pipecat-ai package) says the speaker has finished, within min/max_silence_ms (docs/PROTOCOL.md)."""

    mode: Literal["silence", "semantic"] = "silence"
    eagerness: Literal["low", "medium", "high", "auto"] = "auto"
    min_silence_ms: int | None = Field(None, ge=50, le=5_000)   # None: the eagerness's own
    max_silence_ms: int | None = Field(None, ge=100, le=10_000)
    model_path: str = ""  # the Smart Turn v3.2 ONNX file; "": the one inside the installed pipecat-ai package

    @model_validator(mode="after")
    def _silences(self) -> TurnConfig:
        if self.min_silence_ms is not None and self.max_silence_ms is not None \
                and self.min_silence_ms >= self.max_silence_ms:
            raise ValueError("min_silence_ms must be below max_silence_ms")
        return self


StageName = Literal["wakeword", "vad", "recorder"]
DEFAULT_ORDER: list[StageName] = ["wakeword", "vad", "recorder"]


class PipelineConfig(Strict):
    # the stages after decode -> downmix -> resample, in this order (disabled ones are skipped)
    order: list[StageName] = Field(default_factory=lambda: list(DEFAULT_ORDER))
    vad: VadConfig = Field(default_factory=VadConfig)
    wakeword: WakewordConfig = Field(default_factory=WakewordConfig)
    recorder: RecorderConfig = Field(default_factory=RecorderConfig)
    turn: TurnConfig = Field(default_factory=TurnConfig)

    @model_validator(mode="after")
    def _check_order(self) -> PipelineConfig:
        if sorted(self.order) != sorted(DEFAULT_ORDER):
            raise ValueError(f"order must name each of {', '.join(DEFAULT_ORDER)} exactly once, got {self.order}")
        if self.recorder.per == "utterance" and self.order.index("recorder") < self.order.index("vad"):
            raise ValueError("recorder.per 'utterance' needs the recorder after vad in order "
                             "(it cuts files at the VAD's utterance markers)")
        return self


class ProviderConfig(BaseModel):
    """One provider block. `type` picks the implementation; other keys are that provider's options,
    validated against that provider type's typed options model when the providers are built (an unknown
    or misspelt key is a ConfigError naming the key and the provider)."""

    model_config = ConfigDict(extra="allow")
    type: str
    enabled: bool = True
    language: str | None = None

    @property
    def options(self) -> dict[str, Any]:
        return dict(self.model_extra or {})


class RouteConfig(Strict):
    """`providers.routes` entry: sessions whose `start` names no provider go to the first route whose
    `language` (a primary subtag such as `zh`, a full tag such as `zh-TW`, or "*" for any language, `auto`
    included) and `task` (when given) match."""

    language: str = "*"
    task: Literal["transcribe", "translate"] | None = None
    provider: str


class ProvidersConfig(Strict):
    default: str = "faster_whisper"  # sessions that name neither a provider nor a language (detect: false)
    routes: list[RouteConfig] = Field(default_factory=list)
    # a session with no language (or `auto`) and no provider is routed by the language its speech is in:
    # the multilingual model's language ID over its first 2 s, then `routes` as if it had been named
    detect: bool = True
    fallback: list[str] = Field(default_factory=list)
    timeout_s: float = Field(20.0, gt=0)
    probe_interval_s: float = Field(5.0, gt=0)  # how often a failed provider is re-tried
    instances: dict[str, ProviderConfig] = Field(default_factory=dict)

    @field_validator("instances", mode="before")
    @classmethod
    def _type_defaults(cls, value: Any) -> Any:
        if isinstance(value, Mapping):
            out = {}
            for name, block in value.items():
                block = dict(block or {})
                block.setdefault("type", name)
                out[name] = block
            return out
        return value


class SchedulerConfig(Strict):
    workers: int = Field(0, ge=0)  # lanes for finals; 0 = number of cores
    partial_workers: int = Field(1, ge=1)  # lanes for partials (low CPU priority where the provider can)
    interim_interval_ms: int = Field(500, ge=100)
    min_partial_audio_ms: int = Field(300, ge=0)
    max_queue: int = Field(256, ge=1)
    max_batch: int = Field(8, ge=1)          # finals decoded together in one batch
    max_partial_batch: int = Field(2, ge=1)  # partials per batch: small, so a worker is free again soon


class LoggingConfig(Strict):
    level: str = "INFO"
    json_format: bool = Field(False, alias="json")
    loggers: dict[str, str] = Field(default_factory=dict)  # per-logger levels, e.g. asrhub.engine.scheduler: DEBUG

    def apply_levels(self) -> None:
        """The root level and the per-logger ones (at start-up and on a config reload)."""
        logging.getLogger().setLevel(self.level)
        for name, level in self.loggers.items():
            logging.getLogger(name).setLevel(level.upper())


class OpenAICompatConfig(Strict):
    """The OpenAI-compatible routes (/v1/audio/*, /v1/models, /v1/realtime)."""

    # OpenAI model names -> hub provider names ("" = providers.default, with its fallbacks)
    aliases: dict[str, str] = Field(default_factory=lambda: {
        "whisper-1": "", "gpt-4o-transcribe": "", "gpt-4o-mini-transcribe": ""})
    max_upload_mb: float = Field(100.0, gt=0)  # a bigger `file` answers 413


class ClusterConfig(Strict):
    """Several hub nodes coordinated through Redis (DESIGN §8). An empty `redis_url` is one node, as
    before, with no Redis needed."""

    redis_url: str = ""              # e.g. redis://127.0.0.1:6379/0 (env: ASRHUB_CLUSTER__REDIS_URL)
    #                                  or redis+sentinel://h1:26379,h2:26379/<master>/<db> (cluster/connect.py)
    node_id: str = ""                # "" = host:port of this node
    advertise_url: str = ""          # how other nodes and operators reach this node ("" = http://host:port)
    lease_ms: int = Field(3000, ge=500)          # node lease `node:{id}` (PX); renewed every lease_ms / 3
    stream_maxlen: int = Field(10_000, ge=100)   # `MAXLEN ~` of a session's event log `ev:{id}`
    bridge_block_ms: int = Field(1000, ge=50)    # one blocking XREAD of a bridge / the owner's inbox at most
    connect_timeout_s: float = Field(1.0, gt=0)  # a Redis call slower than this counts as Redis down
    takeover: bool = True            # a dead owner's session moves to the node its client resumes on (else node_lost)


class HubConfig(Strict):
    server: ServerConfig = Field(default_factory=ServerConfig)
    limits: LimitsConfig = Field(default_factory=LimitsConfig)
    audio: AudioConfig = Field(default_factory=AudioConfig)
    pipeline: PipelineConfig = Field(default_factory=PipelineConfig)
    providers: ProvidersConfig = Field(default_factory=ProvidersConfig)
    scheduler: SchedulerConfig = Field(default_factory=SchedulerConfig)
    logging: LoggingConfig = Field(default_factory=LoggingConfig)
    openai_compat: OpenAICompatConfig = Field(default_factory=OpenAICompatConfig)
    cluster: ClusterConfig = Field(default_factory=ClusterConfig)
    _source: Path | None = PrivateAttr(None)  # the file it was read from (watched for hot reload)

    @property
    def source(self) -> Path | None:
        return self._source


class ConfigError(Exception):
    """A config file that does not validate; the message names each bad key."""


_ENV_RE = re.compile(r"\$\{([A-Za-z_][A-Za-z0-9_]*)(?::([^}]*))?\}")


def substitute_env(text: str, env: Mapping[str, str]) -> str:
    def repl(m: re.Match[str]) -> str:
        name, default = m.group(1), m.group(2)
        if name in env:
            return env[name]
        if default is not None:
            return default
        raise ConfigError(f"environment variable {name} is not set and has no default")

    return _ENV_RE.sub(repl, text)


def substitute_tree(node: Any, env: Mapping[str, str]) -> Any:
    """Substitute `${VAR}` in every string value of a parsed YAML tree (comments are never touched).
    A value that is exactly one `${VAR}` takes the YAML type of what it expands to."""
    if isinstance(node, dict):
        return {k: substitute_tree(v, env) for k, v in node.items()}
    if isinstance(node, list):
        return [substitute_tree(v, env) for v in node]
    if isinstance(node, str) and "${" in node:
        out = substitute_env(node, env)
        if _ENV_RE.fullmatch(node.strip()):
            try:
                return yaml.safe_load(out) if out.strip() else out
            except yaml.YAMLError:
                return out
        return out
    return node


def env_override_path(name: str) -> list[str] | None:
    """`ASRHUB_SERVER__PORT` -> ["server", "port"]; None for names that are not config overrides."""
    if not name.startswith(ENV_PREFIX) or name == CONFIG_ENV or "__" not in name:
        return None
    path = [p.lower() for p in name[len(ENV_PREFIX):].split("__")]
    return path if len(path) >= 2 and all(path) else None


def apply_env_overrides(data: dict[str, Any], env: Mapping[str, str]) -> dict[str, Any]:
    for name, raw in sorted(env.items()):
        if not name.startswith(ENV_PREFIX) or name == CONFIG_ENV:
            continue
        path = env_override_path(name)
        if path is None:
            log.debug("%s is not a config override (those are %s<SECTION>__<KEY>): ignored", name, ENV_PREFIX)
            continue
        node = data
        for key in path[:-1]:
            child = node.get(key)
            if not isinstance(child, dict):
                child = {}
                node[key] = child
            node = child
        node[path[-1]] = yaml.safe_load(raw) if raw != "" else ""
    return data


def _describe(err: ValidationError) -> str:
    lines = []
    for e in err.errors():
        key = ".".join(str(p) for p in e["loc"])
        if e["type"] == "extra_forbidden":
            lines.append(f"unknown key '{key}'")
        else:
            lines.append(f"'{key}': {e['msg']}")
    return "; ".join(lines)


def parse_config(data: Mapping[str, Any]) -> HubConfig:
    try:
        cfg = HubConfig.model_validate(dict(data))
    except ValidationError as e:
        raise ConfigError(f"invalid config: {_describe(e)}") from None
    if cfg.providers.instances and cfg.providers.default not in cfg.providers.instances:
        raise ConfigError(f"invalid config: 'providers.default' names '{cfg.providers.default}', "
                          f"which is not a configured provider ({', '.join(cfg.providers.instances)})")
    for name in cfg.providers.fallback:
        if name not in cfg.providers.instances:
            raise ConfigError(f"invalid config: 'providers.fallback' names unknown provider '{name}'")
    for i, route in enumerate(cfg.providers.routes):
        if route.provider not in cfg.providers.instances:
            raise ConfigError(f"invalid config: 'providers.routes.{i}.provider' names unknown provider "
                              f"'{route.provider}'")
    return cfg


_SECRET_KEY = re.compile(r"(^|_)(key|secret|token|password|credentials?)($|_)", re.IGNORECASE)
MASK = "***"


def mask_secrets(node: Any, key: str = "") -> Any:
    """A copy of a config tree with every non-empty string under a secret-looking key replaced by ***
    (API keys, provider api_key, tokens, passwords, credentials files)."""
    if isinstance(node, dict):
        return {k: mask_secrets(v, str(k)) for k, v in node.items()}
    if isinstance(node, list):
        return [mask_secrets(v, key) for v in node]
    if isinstance(node, str) and node and _SECRET_KEY.search(key):
        return MASK
    if isinstance(node, str):
        return mask_url(node)
    return node


_URL_PASSWORD = re.compile(r"^([a-z][a-z0-9+.-]*://[^:/@]*:)([^@/]+)(@)", re.IGNORECASE)


def mask_url(text: str) -> str:
    """`redis://:pw@host:6379/0` -> `redis://:***@host:6379/0` (for logs and `config check`)."""
    return _URL_PASSWORD.sub(rf"\1{MASK}\3", text)


def effective_config(cfg: HubConfig) -> dict[str, Any]:
    """The validated config with every default filled in, secrets masked (for `asrhub config check`)."""
    return mask_secrets(cfg.model_dump(mode="json", by_alias=True))  # type: ignore[no-any-return]


def load_config(path: str | Path | None = None, env: Mapping[str, str] | None = None) -> HubConfig:
    """Read, substitute, override and validate. `path=None`: the file named by ASRHUB_CONFIG, else the
    embedded default."""
    env = os.environ if env is None else env
    p = Path(path) if path else Path(env[CONFIG_ENV]) if env.get(CONFIG_ENV) else DEFAULT_CONFIG_PATH
    try:
        text = p.read_text(encoding="utf-8")
    except OSError as e:
        raise ConfigError(f"cannot read config file {p}: {e.strerror}") from None
    try:
        data = yaml.safe_load(text) or {}
    except yaml.YAMLError as e:
        raise ConfigError(f"config file {p} is not valid YAML: {e}") from None
    if not isinstance(data, dict):
        raise ConfigError(f"config file {p} must be a mapping at the top level")
    cfg = parse_config(apply_env_overrides(substitute_tree(data, env), env))
    cfg._source = p.resolve()
    return cfg
