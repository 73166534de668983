// Shared pieces of the browser transports (see transports.js for the interface).

export const EVENT_TYPES = [
  "session.started",
  "speech.started",
  "speech.ended",
  "transcript.partial",
  "transcript.final",
  "session.migrated",
  "provider.switched",
  "wakeword.detected",
  "error",
  "session.ended",
];

export const CONNECT_TIMEOUT_MS = 10000;
export const TOKEN_TTL_S = 60; // a token only has to start (or resume) the session it is fetched for

export class TransportError extends Error {
  constructor(code, message, { retryable = false, status = 0, retryAfterMs = null } = {}) {
    super(message || code);
    this.code = code;
    this.retryable = retryable;
    this.status = status;
    this.retryAfterMs = retryAfterMs; // a resume refused for now: when to try again (the hub's retry_after_ms)
  }
}

export const KNOWN_CODES = new Set([
  "invalid_command", "unsupported_encoding", "invalid_audio", "unknown_provider",
  "provider_unavailable", "provider_error", "too_many_sessions", "payload_too_large",
  "rate_limited", "unauthorized", "session_not_found", "internal", "node_lost",
]);

export class BaseTransport {
  constructor({ hubBase, token }) {
    this.hubBase = hubBase;
    this.token = token || "";
    this.onEvent = () => {};
    this.onClose = () => {};
    this.gen = 0; // bumped by close(); a connect() that outlives it gives up
  }

  /**
   * Audio handed to this transport but not sent yet (a queue kept across a lost connection), taken back
   * by the controller before it resumes: it sends it again in order after the resume, or, when another
   * hub node took the session over, its held copy. A queued flush or stop is dropped (the controller
   * sends a stop again). Transports that queue nothing return [].
   * @returns {ArrayBuffer[]}
   */
  takeUnsentAudio() {
    return [];
  }

  checkGen(gen) {
    if (gen !== this.gen) throw new TransportError("closed", "closed while connecting");
  }

  url(path) {
    return new URL(path, this.hubBase);
  }

  /**
   * A short-lived token for what goes into a URL or a connect packet (WebSocket ?token=, EventSource
   * ?token=, Socket.IO auth): POST /v1/tokens with the API key in the Authorization header, so the
   * long-lived key never appears in a URL. "" when no key was given (the hub runs without auth).
   */
  async sessionToken() {
    if (!this.token) return "";
    let res;
    try {
      res = await fetch(this.url("/v1/tokens"), {
        method: "POST",
        headers: { Authorization: `Bearer ${this.token}`, "Content-Type": "application/json" },
        body: JSON.stringify({ ttl_s: TOKEN_TTL_S }),
        signal: timeoutSignal(CONNECT_TIMEOUT_MS),
      });
    } catch (err) {
      throw new TransportError("server_unreachable", String(err), { retryable: true });
    }
    let body = null;
    try {
      body = await res.json();
    } catch {
      /* not JSON */
    }
    if (!res.ok || !body || !body.token) {
      const e = (body && body.error) || {};
      throw new TransportError(e.code || (res.status === 401 ? "unauthorized" : "internal"),
        e.message || `POST /v1/tokens: HTTP ${res.status}`, { retryable: res.status >= 500, status: res.status });
    }
    return body.token;
  }

  abort() {
    this.close();
  }
}


export function timeoutSignal(ms) {
  if (AbortSignal.timeout) return AbortSignal.timeout(ms);
  const c = new AbortController();
  setTimeout(() => c.abort(), ms);
  return c.signal;
}

