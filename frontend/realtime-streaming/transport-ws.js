import { BaseTransport, TransportError, KNOWN_CODES, CONNECT_TIMEOUT_MS } from "./transport-base.js";

// ---------------------------------------------------------------------------
// WebSocket — GET /v1/ws: JSON text commands, binary audio, one JSON event per text frame.

export class WebSocketTransport extends BaseTransport {
  get label() {
    return "WebSocket";
  }

  async connect(start) {
    this.close();
    const u = this.url("/v1/ws");
    u.protocol = u.protocol === "https:" ? "wss:" : "ws:";
    const token = await this.sessionToken(); // short-lived: the API key itself never goes in the URL
    if (token) u.searchParams.set("token", token);
    return new Promise((resolve, reject) => {
      let ws;
      try {
        ws = new WebSocket(u.href);
      } catch (err) {
        reject(new TransportError("server_unreachable", String(err), { retryable: true }));
        return;
      }
      ws.binaryType = "arraybuffer";
      this.ws = ws;
      let settled = false;
      const timer = setTimeout(() => {
        if (settled) return;
        settled = true;
        if (this.ws === ws) this.ws = null;
        ws.close();
        reject(new TransportError("timeout", "WebSocket did not open in time", { retryable: true }));
      }, CONNECT_TIMEOUT_MS);

      ws.onopen = () => {
        if (settled) return;
        settled = true;
        clearTimeout(timer);
        ws.send(JSON.stringify({ type: "start", ...start }));
        resolve({});
      };
      ws.onmessage = (m) => {
        if (this.ws !== ws || typeof m.data !== "string") return;
        let ev;
        try {
          ev = JSON.parse(m.data);
        } catch {
          return;
        }
        if (ev && typeof ev === "object") this.onEvent(ev);
      };
      ws.onerror = () => {
        /* a close event always follows */
      };
      ws.onclose = (c) => {
        clearTimeout(timer);
        if (this.ws !== ws) return;
        this.ws = null;
        const info = describeClose(c);
        if (!settled) {
          settled = true;
          // Never opened: the server is down, or refused the upgrade (e.g. 401).
          reject(new TransportError(c.code === 1006 ? "server_unreachable" : info.code, info.message, {
            retryable: c.code === 1006 || info.retryable,
          }));
          return;
        }
        this.onClose(info);
      };
    });
  }

  get isOpen() {
    return !!this.ws && this.ws.readyState === WebSocket.OPEN;
  }

  sendAudio(buf) {
    if (this.isOpen) this.ws.send(buf);
  }

  flush() {
    if (this.isOpen) this.ws.send(JSON.stringify({ type: "flush" }));
  }

  stop() {
    if (this.isOpen) this.ws.send(JSON.stringify({ type: "stop" }));
  }

  close() {
    const ws = this.ws;
    this.ws = null;
    if (ws) {
      ws.onopen = ws.onmessage = ws.onclose = ws.onerror = null;
      try {
        ws.close(1000);
      } catch {
        /* not open yet */
      }
    }
  }
}

function describeClose(c) {
  const reason = (c.reason || "").trim();
  const code = KNOWN_CODES.has(reason) ? reason : null;
  switch (c.code) {
    case 1000:
      return { code: code || "closed_by_server", message: reason, retryable: false };
    case 1001: // going away (server restarting)
    case 1005:
    case 1006: // abnormal (network drop, server killed)
    case 1011: // server error
    case 1012: // service restart
    case 1013: // try again later
    case 1014:
    case 1015:
      return { code: code || "connection_lost", message: reason, retryable: true };
    case 1008:
    case 4001:
    case 4003:
    case 4401:
    case 4403:
      return { code: code || (c.code === 1008 ? "closed_by_server" : "unauthorized"), message: reason, retryable: false };
    case 1009:
      return { code: "payload_too_large", message: reason, retryable: false };
    default:
      return { code: code || "closed_by_server", message: reason, retryable: false };
  }
}
