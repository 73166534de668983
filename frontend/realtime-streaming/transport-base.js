// Shared pieces of the browser transports (see transports.js for the interface).

export const EVENT_TYPES = [
  "session.started",
  "speech.started",
  "speech.ended",
  "transcript.partial",
  "transcript.final",
  "provider.switched",
  "wakeword.detected",
  "error",
  "session.ended",
];

export const CONNECT_TIMEOUT_MS = 10000;

export class TransportError extends Error {
  constructor(code, message, { retryable = false, status = 0 } = {}) {
    super(message || code);
    this.code = code;
    this.retryable = retryable;
    this.status = status;
  }
}

export const KNOWN_CODES = new Set([
  "invalid_command", "unsupported_encoding", "invalid_audio", "unknown_provider",
  "provider_unavailable", "provider_error", "too_many_sessions", "payload_too_large",
  "rate_limited", "unauthorized", "session_not_found", "internal",
]);

export class BaseTransport {
  constructor({ hubBase, token }) {
    this.hubBase = hubBase;
    this.token = token || "";
    this.onEvent = () => {};
    this.onClose = () => {};
    this.gen = 0; // bumped by close(); a connect() that outlives it gives up
  }

  checkGen(gen) {
    if (gen !== this.gen) throw new TransportError("closed", "closed while connecting");
  }

  url(path) {
    return new URL(path, this.hubBase);
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

