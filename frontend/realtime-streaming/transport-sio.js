import { BaseTransport, TransportError, EVENT_TYPES, KNOWN_CODES, CONNECT_TIMEOUT_MS } from "./transport-base.js";

// ---------------------------------------------------------------------------
// Socket.IO — namespace /asr; events are emitted under their `type`.

let sioModule = null;
async function loadSocketIo() {
  if (!sioModule) {
    try {
      sioModule = await import(new URL("./vendor/socket.io.esm.min.js", import.meta.url).href);
    } catch (err) {
      throw new TransportError("sio_unavailable", String(err));
    }
  }
  return sioModule;
}

export class SocketIoTransport extends BaseTransport {
  get label() {
    return "Socket.IO";
  }

  async connect(start) {
    this.close();
    const gen = this.gen;
    const { io } = await loadSocketIo();
    this.checkGen(gen);
    const opts = {
      transports: ["websocket"],
      reconnection: false, // session.js owns reconnect + resume
      forceNew: true,
      timeout: CONNECT_TIMEOUT_MS,
    };
    const token = await this.sessionToken(); // short-lived, in the connect packet (not the URL)
    this.checkGen(gen);
    if (token) opts.auth = { token };
    const socket = io(this.url("/asr").href, opts);
    this.socket = socket;
    for (const type of EVENT_TYPES) {
      socket.on(type, (payload) => {
        if (this.socket !== socket) return;
        const ev = payload && typeof payload === "object" ? { ...payload } : { message: payload };
        if (!ev.type) ev.type = type;
        this.onEvent(ev);
      });
    }
    await new Promise((resolve, reject) => {
      socket.once("connect", resolve);
      socket.once("connect_error", (err) => {
        const data = (err && err.data) || {};
        const code = data.code || (data.error && data.error.code) || null;
        if (this.socket === socket) this.close();
        if (code && KNOWN_CODES.has(code)) reject(new TransportError(code, err.message, { retryable: false }));
        else reject(new TransportError("server_unreachable", (err && err.message) || "connect_error", { retryable: true }));
      });
    });
    socket.on("disconnect", (reason) => {
      if (this.socket !== socket) return;
      this.socket = null;
      socket.removeAllListeners();
      if (reason === "io client disconnect") return;
      // The hub disconnects a live session's socket when another hub node took the session over
      // (docs/PROTOCOL.md "Resume": resume it, on any node); after session.ended or a fatal error the
      // controller knows better and does not resume.
      this.onClose({ code: "connection_lost", message: reason, retryable: true });
    });
    let ack;
    try {
      ack = await socket.timeout(CONNECT_TIMEOUT_MS).emitWithAck("start", start);
    } catch (err) {
      if (this.socket === socket) this.close();
      throw new TransportError("timeout", "no answer to start", { retryable: true });
    }
    if (Array.isArray(ack)) ack = ack[0];
    if (ack && ack.error) {
      const e = ack.error;
      const code = typeof e === "object" ? e.code || "internal" : KNOWN_CODES.has(e) ? e : "internal";
      const message = typeof e === "object" ? e.message || "" : String(e);
      if (this.socket === socket) this.close();
      // a resume the hub refuses for now (its node died, the lease has not run out) says when to try again
      const retryAfterMs = typeof e === "object" && typeof e.retry_after_ms === "number" ? e.retry_after_ms : null;
      throw new TransportError(code, message, { retryable: retryAfterMs !== null, retryAfterMs });
    }
    return { sessionId: (ack && ack.session_id) || null };
  }

  get isOpen() {
    return !!this.socket && this.socket.connected;
  }

  sendAudio(buf) {
    if (this.isOpen) this.socket.emit("audio", buf);
  }

  flush() {
    if (this.isOpen) this.socket.emit("flush");
  }

  stop() {
    if (this.isOpen) this.socket.emit("stop");
  }

  close() {
    this.gen += 1;
    const s = this.socket;
    this.socket = null;
    if (s) {
      s.removeAllListeners();
      s.disconnect();
      if (s.io && s.io.engine) s.io.engine.close();
    }
  }
}
