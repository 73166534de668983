// The three browser transports of the session contract (DESIGN §3.3–§3.5),
// behind one small interface used by session.js:
//
//   t.onEvent = (event) => {}          every hub event (JSON object with `type`)
//   t.onClose = ({code, message, retryable}) => {}   the connection was lost
//   await t.connect(startSession)      open (or re-open) and send start;
//                                      resolves {sessionId?}; rejects TransportError
//   t.sendAudio(arrayBuffer)           pcm_s16le bytes
//   t.flush(); t.stop()                commands
//   t.close()                          drop the connection, no finalisation
//   t.abort()                          like close, and tell the server (SSE: DELETE)
//
// `startSession` is the StartSession body of DESIGN §3.1 *without* "type";
// the WebSocket transport adds {"type": "start"} itself.
//
// One module per transport: transport-ws.js, transport-sse.js, transport-sio.js
// (shared pieces in transport-base.js).

import { WebSocketTransport } from "./transport-ws.js";
import { SseTransport } from "./transport-sse.js";
import { SocketIoTransport } from "./transport-sio.js";

export { EVENT_TYPES, TransportError } from "./transport-base.js";
export { WebSocketTransport, SseTransport, SocketIoTransport };

export function createTransport(kind, opts) {
  if (kind === "sse") return new SseTransport(opts);
  if (kind === "sio") return new SocketIoTransport(opts);
  return new WebSocketTransport(opts);
}
