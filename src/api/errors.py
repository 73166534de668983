"""Mapping HubError onto each wire: an error event (streams) or HTTP status + JSON (REST)."""

from __future__ import annotations

from fastapi.responses import JSONResponse

from ..core.errors import HubError
from ..core.events import ErrorEvent


def error_event(err: HubError, session_id: str = "") -> ErrorEvent:
    """An error outside any session (before start, bad frame) has session_id "" and seq 0."""
    return ErrorEvent(session_id=session_id, code=err.code.value, message=err.message, fatal=err.fatal)


def error_response(err: HubError, headers: dict[str, str] | None = None) -> JSONResponse:
    return JSONResponse({"error": {"code": err.code.value, "message": err.message}},
                        status_code=err.http_status, headers=headers)
