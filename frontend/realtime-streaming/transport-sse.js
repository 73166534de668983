import { BaseTransport, TransportError, EVENT_TYPES, CONNECT_TIMEOUT_MS, timeoutSignal } from "./transport-base.js";

// ---------------------------------------------------------------------------
// HTTP + SSE — POST /v1/sessions, EventSource(events_url), POST audio_url (sequential).

const SSE_MIN_BATCH_BYTES = 3200; // 100 ms of pcm_s16le @ 16 kHz
const SSE_MAX_BATCH_BYTES = 32000; // 1 s: cap when POSTs fall behind
const SSE_MAX_WAIT_MS = 200; // send a smaller batch after this long
const SSE_REOPEN_WAIT_MS = 4000; // time given to EventSource's own reconnect (Last-Event-ID)

export class SseTransport extends BaseTransport {
  constructor(opts) {
    super(opts);
    this.sessionId = null;
    this.eventsUrl = null;
    this.audioUrl = null;
    this.es = null;
    this.ops = []; // ordered: {kind:"audio", chunks, bytes, created} | {kind:"flush"} | {kind:"stop"}
    this.inFlight = null; // AbortController of the running POST
    this.paused = true;
    this.pumpTimer = null;
    this.retries = 0;
    this.streamToken = "";
    // the session's takeover epoch, as the last start or resume reply gave it (absent: 0): sent back as
    // ?epoch= on every audio and command POST, so that one sent before a takeover the page has not heard
    // of yet is refused (503 node_lost without retry_after_ms), not put on the new node's timeline
    // ahead of the held audio (docs/PROTOCOL.md "Held audio")
    this.epoch = 0;
  }

  get label() {
    return "SSE + POST";
  }

  headers(json) {
    const h = {};
    if (json) h["Content-Type"] = "application/json";
    if (this.token) h.Authorization = `Bearer ${this.token}`;
    return h;
  }

  async connect(start) {
    this.paused = true;
    const gen = this.gen;
    const resuming = !!start.resume;
    let res;
    let audioFromMs = null; // a resume's answer: how much audio the session has received
    try {
      res = await fetch(this.url("/v1/sessions"), {
        method: "POST",
        headers: this.headers(true),
        body: JSON.stringify(start),
        signal: timeoutSignal(CONNECT_TIMEOUT_MS),
      });
    } catch (err) {
      this.checkGen(gen);
      throw new TransportError("server_unreachable", String(err), { retryable: true });
    }
    this.checkGen(gen);
    if (res.ok) {
      let info;
      try {
        info = await res.json();
      } catch {
        throw new TransportError("bad_response", "POST /v1/sessions: not JSON");
      }
      this.checkGen(gen);
      if (!info || !info.session_id) throw new TransportError("bad_response", "POST /v1/sessions: no session_id");
      const sameSession = this.sessionId === info.session_id;
      this.sessionId = info.session_id;
      const base = this.url("/");
      const eventsUrl = new URL(info.events_url || `/v1/sessions/${info.session_id}/events`, base).href;
      this.audioUrl = new URL(info.audio_url || `/v1/sessions/${info.session_id}/audio`, base).href;
      if (!sameSession || eventsUrl !== this.eventsUrl) this.closeStream();
      this.eventsUrl = eventsUrl;
      if (resuming && typeof info.audio_from_ms === "number") audioFromMs = info.audio_from_ms;
      this.epoch = Number.isInteger(info.epoch) ? info.epoch : 0;
    } else {
      const err = await readHttpError(res, resuming);
      throw new TransportError(err.code, err.message, {
        retryable: resuming && (res.status >= 500 || res.status === 408 || res.status === 429),
        status: res.status,
        retryAfterMs: err.retryAfterMs, // a resume refused for now: a dead node's lease runs out then
      });
    }
    this.checkGen(gen);
    // EventSource cannot send headers: its URL carries a short-lived token, never the API key
    this.streamToken = await this.sessionToken();
    this.checkGen(gen);
    await this.openEvents(resuming ? start.resume.last_seq : null);
    this.checkGen(gen);
    this.paused = false;
    this.retries = 0;
    this.pump();
    return { sessionId: this.sessionId, audioFromMs };
  }

  /** Open (or wait for) the event stream. */
  openEvents(lastSeq) {
    const existing = this.es;
    if (existing && existing.readyState === EventSource.OPEN) return Promise.resolve();
    return new Promise((resolve, reject) => {
      let settled = false;
      const done = (err) => {
        if (settled) return;
        settled = true;
        clearTimeout(timer);
        if (err) reject(err);
        else resolve();
      };
      let timer;
      if (existing && existing.readyState === EventSource.CONNECTING) {
        // EventSource is already reconnecting by itself, sending Last-Event-ID:
        // give it a moment, then fall back to a fresh stream.
        existing.addEventListener("open", () => done(), { once: true });
        timer = setTimeout(() => {
          if (this.es === existing) this.closeStream();
          this.newStream(lastSeq, done);
        }, SSE_REOPEN_WAIT_MS);
        return;
      }
      this.newStream(lastSeq, done);
    });
  }

  newStream(lastSeq, done) {
    this.closeStream();
    const u = new URL(this.eventsUrl);
    if (this.streamToken) u.searchParams.set("token", this.streamToken);
    // A new EventSource cannot send the Last-Event-ID header; pass the same
    // information as a query parameter (the resume request carries it too).
    if (lastSeq != null) u.searchParams.set("last_event_id", String(lastSeq));
    const es = new EventSource(u.href);
    this.es = es;
    let opened = false;
    const timer = setTimeout(() => {
      if (opened) return;
      if (this.es === es) this.closeStream();
      done(new TransportError("timeout", "event stream did not open in time", { retryable: true }));
    }, CONNECT_TIMEOUT_MS);
    es.onopen = () => {
      opened = true;
      clearTimeout(timer);
      done();
    };
    es.onerror = () => {
      if (this.es !== es) return;
      if (!opened) {
        clearTimeout(timer);
        this.closeStream();
        done(new TransportError("server_unreachable", "event stream failed to open", { retryable: true }));
        return;
      }
      if (es.readyState === EventSource.CLOSED) this.closeStream();
      // CONNECTING: EventSource retries by itself with Last-Event-ID; keep it,
      // connect() will wait for it before opening a new one.
      this.lost("connection_lost", "event stream interrupted");
    };
    const handler = (m) => {
      if (this.es !== es) return;
      let ev;
      try {
        ev = JSON.parse(m.data);
      } catch {
        return;
      }
      if (!ev || typeof ev !== "object") return;
      if (!ev.type && m.type !== "message") ev.type = m.type;
      if (ev.type === "session.ended") this.closeStream(); // or EventSource would reconnect
      this.onEvent(ev);
    };
    for (const t of EVENT_TYPES) es.addEventListener(t, handler);
    es.addEventListener("message", handler);
  }

  closeStream() {
    const es = this.es;
    this.es = null;
    if (es) {
      es.onopen = es.onerror = null;
      es.close();
    }
  }

  lost(code, message) {
    if (this.paused) return; // already reported
    this.paused = true;
    clearTimeout(this.pumpTimer);
    this.onClose({ code, message, retryable: true });
  }

  sendAudio(buf) {
    if (!buf || !buf.byteLength) return;
    const last = this.ops[this.ops.length - 1];
    if (last && last.kind === "audio" && !last.sending && last.bytes + buf.byteLength <= SSE_MAX_BATCH_BYTES) {
      last.chunks.push(buf);
      last.bytes += buf.byteLength;
    } else {
      this.ops.push({ kind: "audio", chunks: [buf], bytes: buf.byteLength, created: performance.now() });
    }
    this.pump();
  }

  flush() {
    this.ops.push({ kind: "flush" });
    this.pump();
  }

  stop() {
    this.ops.push({ kind: "stop" });
    this.pump();
  }

  takeUnsentAudio() {
    // a POST still in flight stays: its answer settles it (sent, or sent again after the resume)
    const keep = this.inFlight && this.ops.length ? 1 : 0;
    const taken = this.ops.slice(keep);
    this.ops = this.ops.slice(0, keep);
    clearTimeout(this.pumpTimer);
    this.pumpTimer = null;
    return taken.flatMap((op) => (op.kind === "audio" ? op.chunks : []));
  }

  /** Send the head of the queue; one POST in flight at a time, strictly in order. */
  pump() {
    clearTimeout(this.pumpTimer);
    this.pumpTimer = null;
    if (this.paused || this.inFlight || !this.ops.length || !this.sessionId) return;
    const op = this.ops[0];
    if (op.kind === "audio" && this.ops.length === 1 && op.bytes < SSE_MIN_BATCH_BYTES) {
      const wait = SSE_MAX_WAIT_MS - (performance.now() - op.created);
      if (wait > 0) {
        this.pumpTimer = setTimeout(() => this.pump(), wait);
        return;
      }
    }
    op.sending = true;
    const ctrl = new AbortController();
    this.inFlight = ctrl;
    const url = new URL(
      op.kind === "audio" ? this.audioUrl : this.url(`/v1/sessions/${encodeURIComponent(this.sessionId)}/${op.kind}`).href,
    );
    url.searchParams.set("epoch", String(this.epoch));
    const init = {
      method: "POST",
      headers: this.headers(false),
      signal: ctrl.signal,
    };
    if (op.kind === "audio") {
      init.headers["Content-Type"] = "application/octet-stream";
      init.body = new Blob(op.chunks);
    }
    fetch(url.href, init).then(
      async (res) => {
        if (this.inFlight !== ctrl) return;
        this.inFlight = null;
        if (res.ok) {
          this.ops.shift();
          this.retries = 0;
          this.pump();
          return;
        }
        const err = await readHttpError(res, false);
        if (res.status === 503 && err.code === "node_lost" && err.retryAfterMs === null) {
          // another node took the session over after our start or resume: this POST was not placed.
          // Resume (the reply brings the new epoch and audio_from_ms); the held audio, this POST's with
          // it, goes again from there, and a stop asked for after it (session.js)
          this.ops = [];
          this.retries = 0;
          this.closeStream();
          this.lost("node_lost", err.message);
          return;
        }
        if (res.status === 429 || res.status === 503 || res.status === 502 || res.status === 504) {
          // Back off and retry the same request (order is preserved).
          if (++this.retries <= 5) {
            this.pumpTimer = setTimeout(() => this.pump(), 250 * 2 ** this.retries);
            return;
          }
        }
        this.ops.shift(); // the request itself is bad: report and go on
        this.retries = 0;
        if (res.status === 404 || res.status === 401 || res.status === 403) {
          // The session is gone (or we are not allowed): nothing else will work.
          this.ops = [];
          this.paused = true;
          this.closeStream();
          this.onClose({ code: err.code, message: err.message, retryable: false });
          return;
        }
        this.onEvent({ type: "error", code: err.code, message: err.message, fatal: false, local: true });
        this.pump();
      },
      (fetchErr) => {
        if (this.inFlight !== ctrl) return;
        this.inFlight = null;
        op.sending = false; // resend after reconnecting
        this.lost("connection_lost", String(fetchErr));
      },
    );
  }

  close() {
    this.gen += 1;
    this.paused = true;
    clearTimeout(this.pumpTimer);
    if (this.inFlight) this.inFlight.abort();
    this.inFlight = null;
    this.ops = [];
    this.closeStream();
  }

  abort() {
    const id = this.sessionId;
    this.close();
    if (id) {
      fetch(this.url(`/v1/sessions/${encodeURIComponent(id)}`), {
        method: "DELETE",
        headers: this.headers(false),
        keepalive: true,
      }).catch(() => {});
    }
  }
}

async function readHttpError(res, resuming) {
  let code = null;
  let message = "";
  let retryAfterMs = null;
  try {
    const body = await res.json();
    const e = body && (body.error || body.detail);
    if (e && typeof e === "object") {
      code = e.code || null;
      message = e.message || "";
      if (typeof e.retry_after_ms === "number") retryAfterMs = e.retry_after_ms;
    } else if (typeof e === "string") {
      message = e;
    }
  } catch {
    /* not JSON */
  }
  if (!code) {
    code =
      {
        400: "invalid_command",
        401: "unauthorized",
        403: "unauthorized",
        404: resuming ? "session_not_found" : "invalid_command",
        413: "payload_too_large",
        415: "unsupported_encoding",
        429: "rate_limited",
      }[res.status] || "internal";
  }
  return { code, message: message || `HTTP ${res.status}`, retryAfterMs };
}
