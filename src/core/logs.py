"""Log set-up for the hub process: plain text or one JSON object per line, and no secrets in it.

`configure_logging()` installs one root handler (uvicorn is told not to configure its own loggers, so
its records reach the same handler). `logging.json: true` selects `JsonFormatter`: one object per line
with `ts`, `level`, `logger`, `msg`, any `extra=` fields, and `exc` for a traceback; never a terminal
colour escape, nor uvicorn's `color_message` (its message again, coloured). `RedactTokens`, on
uvicorn's access and WebSocket-handshake loggers, replaces the value of `token=` query parameters (browser and Socket.IO
clients pass their key that way) with `***`.
"""

from __future__ import annotations

import json
import logging
import re
import sys
from datetime import UTC, datetime
from typing import Any

from .config import LoggingConfig

#: Attributes every LogRecord has; anything else on a record came from `extra=`.
_STANDARD = set(vars(logging.LogRecord("", 0, "", 0, "", None, None))) | {"message", "asctime", "taskName"}
_ANSI_RE = re.compile(r"\x1b\[[0-9;?]*[A-Za-z]")
#: `extra=` fields that are presentation, not data (uvicorn's coloured copy of the message).
_DROPPED = {"color_message"}
_TOKEN_RE = re.compile(r"((?:^|[?&])(?:token|api_key|key)=)[^&#\s]*", re.IGNORECASE)
PLAIN_FORMAT = "%(asctime)s %(levelname)s %(name)s: %(message)s"


def strip_ansi(text: str) -> str:
    """The text without terminal control sequences (colours: ESC [ 32 m ... ESC [ 0 m)."""
    return _ANSI_RE.sub("", text)


def redact_url(text: str) -> str:
    """`/v1/ws?token=sk-1&x=1` -> `/v1/ws?token=***&x=1`."""
    return _TOKEN_RE.sub(r"\1***", text)


class JsonFormatter(logging.Formatter):
    def format(self, record: logging.LogRecord) -> str:
        out: dict[str, Any] = {
            "ts": datetime.fromtimestamp(record.created, UTC).isoformat(timespec="milliseconds"),
            "level": record.levelname,
            "logger": record.name,
            "msg": strip_ansi(record.getMessage()),
        }
        for k, v in vars(record).items():
            if k not in _STANDARD and k not in _DROPPED and not k.startswith("_"):
                out[k] = strip_ansi(v) if isinstance(v, str) else v
        if record.exc_info:
            out["exc"] = strip_ansi(self.formatException(record.exc_info))
        return json.dumps(out, ensure_ascii=False, default=str)


class RedactTokens(logging.Filter):
    """For uvicorn's loggers: the access log (`uvicorn.access`, args client/method/path/version/status)
    and the WebSocket handshake lines (`uvicorn.error`: '"WebSocket /v1/ws?token=..." [accepted]')."""

    def filter(self, record: logging.LogRecord) -> bool:
        if isinstance(record.args, tuple):
            record.args = tuple(redact_url(a) if isinstance(a, str) else a for a in record.args)
        if isinstance(record.msg, str):
            record.msg = redact_url(record.msg)
        return True


#: The loggers whose records may carry a request path with its query string.
REDACTED_LOGGERS = ("uvicorn.access", "uvicorn.error")


def install_redaction() -> None:
    for name in REDACTED_LOGGERS:
        lg = logging.getLogger(name)
        if not any(isinstance(f, RedactTokens) for f in lg.filters):
            lg.addFilter(RedactTokens())


def configure_logging(cfg: LoggingConfig, level: str | None = None) -> None:
    """One root handler on stderr, text or JSON; `level` (the CLI's --log-level) wins over the config."""
    root = logging.getLogger()
    for h in list(root.handlers):
        root.removeHandler(h)
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(JsonFormatter() if cfg.json_format else logging.Formatter(PLAIN_FORMAT))
    root.addHandler(handler)
    if level:
        cfg.level = level.upper()
    logging.getLogger("faster_whisper").setLevel(logging.WARNING)
    cfg.apply_levels()
    install_redaction()
