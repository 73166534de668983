// One streaming session over any transport, with reconnect + resume.
//
// States (reported through onState, mirrored on #status[data-state]):
//   connecting → open → (reconnecting → open)* → closed | error
//
// Reconnect: when the connection drops before session.ended (and without a
// fatal error), wait with exponential backoff + jitter (0.5 s, 1 s, 2 s, 4 s,
// then 5 s) and re-open the transport with the original StartSession plus
// `resume: {session_id, last_seq}`, last_seq being the highest event `seq`
// seen. Events are de-duplicated by seq, so a replay that overlaps is
// harmless. Audio produced while disconnected is buffered (up to
// MAX_PENDING_MS) and sent once the session is back. After `giveUpMs`
// without success the session fails ("reconnect_failed"). If the server says
// the session is gone (session_not_found) the controller either starts a
// fresh session (option restartOnResumeFailure, used for the live
// microphone) or fails with "resume_failed".
//
// Takeover (a hub cluster whose node dies; docs/PROTOCOL.md "Held audio"):
// the audio sent since the last final is held (held.js, at most replayAudioMs).
// A resume asks for the hub's answer (resume.held_audio): nothing new is sent
// until it comes, session.started with seq 0 (SSE: the resume's reply), whose
// audio_from_ms is how much audio the session has received; the held audio from
// there goes out again first, on every resume: the utterance that was open when
// a node died is decoded again, audio a dead relay node took is not lost, and
// none is sent twice. A resume refused for now (retry_after_ms: the dead node's
// lease still runs) is tried again when the hub says.

import { HeldAudio } from "./held.js";

const ANSWER_WAIT_MS = 10000;
const MAX_PENDING_MS = 30000;
const BYTES_PER_MS = 32; // pcm_s16le mono @ 16 kHz
const STOP_TIMEOUT_MS = 30000;
// Answers to a resume request meaning "that session cannot be resumed"
// (gone, or its events are no longer held).
const RESUME_REFUSED = new Set(["session_not_found", "invalid_command"]);

export class SessionController {
  /**
   * @param {object} o
   * @param {object} o.transport        a transport from transports.js
   * @param {object} o.start            StartSession body (without "type")
   * @param {number} [o.giveUpMs=30000] stop trying to reconnect after this long
   * @param {boolean} [o.restartOnResumeFailure=false]
   * @param {number} [o.replayAudioMs=30000] audio held for a takeover (the hub's limits.replay_audio_s)
   * @param {(ev:object)=>void} o.onEvent
   * @param {(state:string, detail:object)=>void} o.onState
   * @param {(code:string|null, message?:string)=>void} o.onError   null clears
   * @param {(text:string)=>void} o.onNotice
   */
  constructor(o) {
    this.transport = o.transport;
    this.start = o.start;
    this.giveUpMs = o.giveUpMs || 30000;
    this.restartOnResumeFailure = !!o.restartOnResumeFailure;
    this.cb = o;
    this.state = "idle";
    this.sessionId = null;
    this.lastSeq = 0;
    this.ended = false;
    this.stopping = false;
    this.fatal = null;
    this.disposed = false;
    this.pending = [];
    this.pendingBytes = 0;
    this.startPending = false; // start sent, not yet confirmed by the hub
    this.resumeAttempt = false; // the pending start carries `resume`
    this.reconnectAttempt = 0;
    this.stopTimer = null;
    this.replayAudioMs = o.replayAudioMs ?? 30000;
    this.held = new HeldAudio(this.replayAudioMs);
    this.settling = null; // after a resume: the wait for word of a takeover (a timer)
    this.answered = false; // the hub answered this connection's resume (audio_from_ms): resent from there
    this.retryAfterMs = null; // a refused resume's retry_after_ms: the next reconnect's wait
    this.stopSent = false; // stop went out on the current connection
    this.migrations = 0; // takeovers of this session seen here

    this.transport.onEvent = (ev) => this.handleEvent(ev);
    this.transport.onClose = (info) => this.handleClose(info);
  }

  setState(state, detail = {}) {
    this.state = state;
    this.cb.onState(state, { transport: this.transport.label, attempt: this.reconnectAttempt, ...detail });
  }

  /** Connect and send start. Rejects (after reporting) when the session cannot open. */
  async open() {
    this.setState("connecting");
    try {
      const r = await this.transport.connect(this.start);
      if (this.disposed) return;
      this.startSent(r, false);
      this.afterConnect();
      this.setState("open");
    } catch (err) {
      if (this.disposed) return;
      this.transport.close();
      this.fail(err.code || "server_unreachable", err.message);
      throw err;
    }
  }

  adoptSession(id) {
    if (id && id !== this.sessionId) {
      this.sessionId = id;
      this.lastSeq = 0;
      this.held = new HeldAudio(this.replayAudioMs);
    }
  }

  /** Send one frame now, and hold it for a takeover. */
  send(buf) {
    this.transport.sendAudio(buf);
    this.held.add(buf);
  }

  /** Queue or send one audio frame. */
  sendAudio(buf) {
    if (this.disposed || this.ended || this.stopping) return;
    if (this.state === "open" && !this.settling) {
      this.send(buf);
      return;
    }
    if (this.state !== "connecting" && this.state !== "reconnecting" && !this.settling) return;
    this.queue(buf, false);
  }

  /** Queue audio for after the (re)connect; `held`: counted in the held audio already (sent once). */
  queue(buf, held, front = false) {
    if (front) this.pending.unshift({ buf, held });
    else this.pending.push({ buf, held });
    this.pendingBytes += buf.byteLength;
    while (this.pendingBytes > MAX_PENDING_MS * BYTES_PER_MS && this.pending.length) {
      this.pendingBytes -= this.pending.shift().buf.byteLength; // drop the oldest audio
    }
  }

  /** Send what queued up while (re)connecting, in order, before any new audio. After a resume
   * (and with audio held), first wait for word of a takeover. */
  afterConnect(resumed = false) {
    this.stopSent = false;
    clearTimeout(this.settling);
    this.settling = null;
    if (resumed && this.held.enabled) {
      // the resume asked for the hub's answer (held_audio): nothing new goes out before it (or the
      // refusal, or the connection's end); the timer is only a safety net
      this.settling = setTimeout(() => this.settle(), ANSWER_WAIT_MS);
      return;
    }
    this.settle();
  }

  /** The session's place is known: queued audio, then a stop already asked for. */
  settle() {
    clearTimeout(this.settling);
    this.settling = null;
    if (this.disposed) return;
    this.drainPending();
    if (this.stopping && !this.stopSent) this.sendStop();
  }

  sendStop() {
    this.stopSent = true;
    this.transport.stop();
  }

  /** The hub's answer to our resume (session.started with seq 0, or the SSE resume's reply): the
   * session has received audio up to audioFromMs; the held audio from there goes out again, first
   * (audio a dying connection or relay node took but never delivered; none twice). */
  resumedAt(audioFromMs) {
    this.answered = true;
    if (!this.held.enabled) return;
    this.pending = this.pending.filter((p) => !p.held);
    this.pendingBytes = this.pending.reduce((n, p) => n + p.buf.byteLength, 0);
    const { chunks } = this.held.since(audioFromMs);
    for (const buf of chunks) this.transport.sendAudio(buf);
    this.settle();
  }

  /** Another hub node took the session over: the held audio from audio_from_ms goes out again, first
   * (unless the answer to our resume said from where already). */
  migrated(ev) {
    this.migrations += 1;
    if (this.answered) {
      this.cb.onNotice("The server went down; another took the session over and is hearing the last sentence again.");
      return;
    }
    // audio sent once but still queued is in the held audio: that copy goes out, from audio_from_ms
    this.pending = this.pending.filter((p) => !p.held);
    this.pendingBytes = this.pending.reduce((n, p) => n + p.buf.byteLength, 0);
    const { chunks, gapMs } = this.held.since(ev.audio_from_ms);
    for (const buf of chunks) this.transport.sendAudio(buf);
    this.cb.onNotice(gapMs
      ? `The server went down; another took the session over (${(gapMs / 1000).toFixed(1)} s of audio was no longer held).`
      : "The server went down; another took the session over and is hearing the last sentence again.");
    if (this.stopping && this.stopSent) this.sendStop(); // the stop came before the held audio: again, after it
    this.settle();
  }

  drainPending() {
    const queued = this.pending;
    this.pending = [];
    this.pendingBytes = 0;
    for (const { buf, held } of queued) {
      if (held) this.transport.sendAudio(buf);
      else this.send(buf);
    }
  }

  flush() {
    if (this.state === "open" && !this.stopping) this.transport.flush();
  }

  /** End of audio: the hub finalises and answers with session.ended. */
  stop() {
    if (this.disposed || this.ended || this.stopping) return;
    this.stopping = true;
    if (this.state === "open" && !this.settling) {
      this.drainPending();
      this.sendStop();
    } else if (this.state === "open") {
      // settling after a resume: stop goes out with the queued audio
    } else if (this.state !== "reconnecting" && this.state !== "connecting") {
      this.dispose("closed");
      return;
    }
    // connecting / reconnecting: stop is sent as soon as the session is back.
    // Never hang in "finishing" if the hub does not answer.
    this.stopTimer = setTimeout(() => {
      if (!this.ended && !this.disposed) {
        this.cb.onError("timeout", "no session.ended after stop");
        this.dispose("closed");
      }
    }, STOP_TIMEOUT_MS);
  }

  /** Drop everything now (no finalisation). */
  abort() {
    if (this.disposed) return;
    this.transport.abort();
    this.dispose("closed");
  }

  dispose(finalState, detail) {
    if (this.disposed) return;
    this.disposed = true;
    clearTimeout(this.stopTimer);
    clearTimeout(this.settling);
    this.settling = null;
    this.transport.onEvent = () => {};
    this.transport.onClose = () => {};
    this.transport.close();
    this.pending = [];
    this.setState(finalState, detail);
  }

  fail(code, message) {
    this.cb.onError(code, message);
    this.dispose("error", { code });
  }

  /** The transport connected and sent start; returns what connect() returned. */
  startSent(r, resume) {
    this.resumeAttempt = resume;
    this.startPending = true;
    if (r && r.sessionId) {
      // SSE and Socket.IO answer start directly (HTTP status / ack): confirmed.
      this.adoptSession(r.sessionId);
      this.startPending = false;
    }
  }

  handleEvent(ev) {
    if (this.disposed || !ev || typeof ev !== "object") return;
    // An error outside any session (session_id "", seq 0) right after start
    // means the hub refused the start (WebSocket keeps the socket open then).
    if (ev.type === "error" && !ev.session_id && this.startPending) {
      this.startPending = false;
      const later = this.resumeAttempt && typeof ev.retry_after_ms === "number";
      if (later) {
        // refused for now (the session's node died; it can move once its lease has run out): then
        this.retryAfterMs = ev.retry_after_ms;
        clearTimeout(this.settling);
        this.settling = null;
      }
      this.transport.close();
      if (this.resumeAttempt && RESUME_REFUSED.has(ev.code)) this.resumeFailed();
      else if (later) this.reconnect();
      else this.fail(ev.code || "internal", ev.message);
      return;
    }
    if (ev.type === "session.started" && ev.resumed && !ev.seq) {
      this.startPending = false;
      this.resumedAt(ev.audio_from_ms); // the answer to our resume: not an event of the session
      return;
    }
    if (ev.session_id && ev.session_id !== this.sessionId) {
      // Follow a new session id only when the hub announces one.
      if (this.sessionId && ev.type !== "session.started") return;
      this.adoptSession(ev.session_id);
    }
    if (ev.session_id && ev.seq > 0) this.startPending = false;
    // De-duplicate replayed events by seq (an error outside a session has seq 0).
    if (typeof ev.seq === "number" && ev.seq > 0 && ev.session_id === this.sessionId) {
      if (ev.seq <= this.lastSeq) return; // replayed duplicate
      this.lastSeq = ev.seq;
    }
    if (ev.type === "error" && ev.fatal) this.fatal = ev;
    if (ev.type === "transcript.final") this.held.settled(ev.end_ms);
    if (ev.type === "session.migrated" && !this.ended) this.migrated(ev);
    this.cb.onEvent(ev);
    if (ev.type === "session.ended") {
      this.ended = true;
      this.dispose(ev.reason === "error" || this.fatal ? "error" : "closed", { reason: ev.reason });
    }
  }

  handleClose(info) {
    if (this.disposed) return;
    if (this.ended) {
      this.dispose("closed");
      return;
    }
    if (info && info.code === "session_not_found" && this.sessionId) {
      this.resumeFailed();
      return;
    }
    if (this.fatal) {
      this.dispose("error", { code: this.fatal.code });
      return;
    }
    if (info && info.retryable === false) {
      this.fail(info.code || "closed_by_server", info.message);
      return;
    }
    this.reconnect();
  }

  /** The hub no longer has our session: start a fresh one (live mic) or give up. */
  resumeFailed() {
    this.transport.close();
    if (this.restartOnResumeFailure && !this.stopping) {
      this.sessionId = null;
      this.lastSeq = 0;
      this.held = new HeldAudio(this.replayAudioMs);
      for (const p of this.pending) p.held = false; // the new session holds them when they go out
      this.fatal = null;
      this.reconnect({ fresh: true });
      return;
    }
    this.fail("resume_failed");
  }

  async reconnect({ fresh = false } = {}) {
    if (this.reconnecting || this.disposed) return;
    this.reconnecting = true;
    const lostAt = performance.now();
    this.reconnectAttempt = 0;
    this.setState("reconnecting");
    this.cb.onError("connection_lost");
    while (!this.disposed) {
      this.reconnectAttempt += 1;
      const base = Math.min(5000, 500 * 2 ** (this.reconnectAttempt - 1));
      // a refusal that said when to try again is tried again then, not on the backoff
      const delay = this.retryAfterMs !== null ? this.retryAfterMs : base * (0.8 + 0.4 * Math.random());
      this.retryAfterMs = null;
      if (performance.now() - lostAt + delay > this.giveUpMs) {
        this.reconnecting = false;
        this.fail("reconnect_failed");
        return;
      }
      this.setState("reconnecting");
      await sleep(delay);
      if (this.disposed) return;
      const body = { ...this.start };
      if (!fresh && this.sessionId) {
        // held_audio: the hub answers first how much audio it has received (sent again from there)
        body.resume = { session_id: this.sessionId, last_seq: this.lastSeq, held_audio: this.held.enabled };
      }
      this.answered = false;
      const unsent = this.transport.takeUnsentAudio();
      for (let i = unsent.length - 1; i >= 0; i -= 1) this.queue(unsent[i], !fresh, true);
      try {
        const r = await this.transport.connect(body);
        if (this.disposed) return;
        this.startSent(r, !!body.resume);
        this.reconnecting = false;
        this.cb.onError(null);
        this.afterConnect(!!body.resume);
        if (body.resume && r && typeof r.audioFromMs === "number") this.resumedAt(r.audioFromMs);
        this.setState("open");
        this.cb.onNotice(
          body.resume
            ? "Reconnected — session resumed."
            : "Reconnected. The previous session had expired on the server, so a new session was started.",
        );
        return;
      } catch (err) {
        if (this.disposed) return;
        if (err && typeof err.retryAfterMs === "number") this.retryAfterMs = err.retryAfterMs;
        if (err && err.retryable) continue;
        this.reconnecting = false;
        if (body.resume && err && RESUME_REFUSED.has(err.code)) {
          this.resumeFailed();
          return;
        }
        this.transport.close();
        this.fail((err && err.code) || "reconnect_failed", err && err.message);
        return;
      }
    }
  }
}

function sleep(ms) {
  return new Promise((r) => setTimeout(r, ms));
}
