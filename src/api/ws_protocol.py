"""uvicorn's WebSocket protocol (websockets, sans-I/O) with a typed answer to a text frame that is not
valid UTF-8.

uvicorn decodes a text message before the app sees it; one that is not UTF-8 made it log an ERROR with
a traceback and close the connection (1007) with no word to the client. Here such a message is the
client's fault: it gets the contract's `error` event (`invalid_command`, fatal; the OpenAI shape on
/v1/realtime, Deepgram's `Error` on /v1/listen, none on Socket.IO's socket, which speaks Engine.IO), then the close 1007 that RFC 6455
asks for, and the hub logs one INFO line. The app sees the disconnect, as after any dropped
connection (a session is detached, resumable). `asrhub serve` runs it; under another ASGI server (the
app factory) that server's own handling applies."""

from __future__ import annotations

import logging

from uvicorn.protocols.websockets.websockets_sansio_impl import WebSocketsSansIOProtocol

from ..core.errors import ErrorCode, HubError
from .deepgram_wire import ErrorMsg
from .errors import error_event
from .realtime_events import realtime_error

log = logging.getLogger(__name__)

INVALID_UTF8 = 1007


def invalid_text(err: UnicodeDecodeError) -> HubError:
    return HubError(ErrorCode.invalid_command, f"a text frame is not valid UTF-8 (byte {err.start}: {err.reason}); "
                    "send audio as binary frames and commands as UTF-8 JSON text", fatal=True)


def error_text(path: str, err: HubError) -> str | None:
    """The error event for the WebSocket at `path`, in its own shape; None where the wire has none."""
    if path.startswith("/socket.io"):
        return None
    if path.startswith("/v1/realtime"):
        return realtime_error(err).model_dump_json()
    if path.startswith("/v1/listen"):  # Deepgram's Error message
        return ErrorMsg(variant=err.code.value, description=err.message).model_dump_json()
    return error_event(err).to_json()


class Utf8CheckedProtocol(WebSocketsSansIOProtocol):
    def send_receive_event_to_app(self) -> None:
        if self.curr_msg_data_type == "text" and not self.close_sent:
            data = b"".join(self.frames)
            try:
                data.decode()
            except UnicodeDecodeError as e:
                self.frames = []
                self._refuse_text(e)
                return
        super().send_receive_event_to_app()

    def _refuse_text(self, exc: UnicodeDecodeError) -> None:
        path = self.scope["path"]
        client = self.scope.get("client") or ("?", 0)
        log.info("WebSocket %s from %s:%s: a text frame is not valid UTF-8; closed (1007)", path, client[0], client[1])
        text = error_text(path, invalid_text(exc))
        if text is not None:
            self.conn.send_text(text.encode())
        self.conn.send_close(INVALID_UTF8, "invalid UTF-8 in a text frame")
        self.handle_parser_exception()  # the app's disconnect, the frames out, the transport closed
