// The transcript model (finals of one or more sessions) and its exports.
//
// Offsets in events are positions in *that session's* audio timeline. When the
// page runs several sessions in a row, each new session is placed after the
// previous one on one continuous timeline (`timeline_*_ms`), so the SRT export
// stays monotonic.

export class Transcript {
  constructor() {
    this.clear();
  }

  clear() {
    /** @type {Array<object>} */
    this.finals = [];
    /** @type {Map<string, object>} */
    this.sessions = new Map();
    this.lastSessionId = null;
  }

  get isEmpty() {
    return this.finals.length === 0;
  }

  /** Register a session (idempotent: a resumed session keeps its place). */
  beginSession(sessionId, info = {}) {
    if (!sessionId) return null;
    let s = this.sessions.get(sessionId);
    if (!s) {
      const prev = this.lastSessionId && this.sessions.get(this.lastSessionId);
      const baseMs = prev ? prev.baseMs + prev.audioMs : 0;
      s = { session_id: sessionId, baseMs, audioMs: 0, provider: null, language: null, transport: null, turn: null, started_at: new Date().toISOString() };
      this.sessions.set(sessionId, s);
      this.lastSessionId = sessionId;
    }
    for (const k of ["provider", "language", "transport", "turn"]) if (info[k]) s[k] = info[k];
    return s;
  }

  endSession(sessionId, stats) {
    const s = this.sessions.get(sessionId);
    if (s && stats && typeof stats.audio_ms === "number") s.audioMs = Math.max(s.audioMs, stats.audio_ms);
  }

  /**
   * Add (or replace, when the same utterance is delivered twice) a final.
   * @returns {{entry: object, replaced: boolean}}
   */
  addFinal(ev, extra = {}) {
    const s = this.sessions.get(ev.session_id) || this.beginSession(ev.session_id || "local", extra);
    const start = num(ev.start_ms);
    const end = num(ev.end_ms);
    if (s) s.audioMs = Math.max(s.audioMs, end);
    const base = s ? s.baseMs : 0;
    const entry = {
      session_id: ev.session_id || null,
      utterance_id: ev.utterance_id != null ? String(ev.utterance_id) : String(this.finals.length + 1),
      text: (ev.text || "").trim(),
      start_ms: start,
      end_ms: end,
      timeline_start_ms: base + start,
      timeline_end_ms: base + end,
      provider: ev.provider || (s && s.provider) || null,
      language: ev.language || (s && s.language) || null,
      latency_ms: typeof ev.latency_ms === "number" ? ev.latency_ms : null,
      words: Array.isArray(ev.words) ? ev.words : [],
      seq: ev.seq,
    };
    if (typeof ev.end_of_turn === "boolean") entry.end_of_turn = ev.end_of_turn; // semantic turn mode only
    const i = this.finals.findIndex((f) => f.session_id === entry.session_id && f.utterance_id === entry.utterance_id);
    if (i >= 0) {
      this.finals[i] = entry;
      return { entry, replaced: true };
    }
    this.finals.push(entry);
    return { entry, replaced: false };
  }

  hasFinal(sessionId, utteranceId) {
    const u = String(utteranceId);
    return this.finals.some((f) => f.session_id === (sessionId || null) && f.utterance_id === u);
  }

  toText() {
    return this.finals
      .filter((f) => f.text)
      .map((f) => f.text)
      .join("\n") + "\n";
  }

  toSrt() {
    let n = 0;
    const blocks = [];
    for (const f of this.finals) {
      if (!f.text) continue;
      n += 1;
      const end = Math.max(f.timeline_end_ms, f.timeline_start_ms + 1);
      blocks.push(`${n}\n${srtTime(f.timeline_start_ms)} --> ${srtTime(end)}\n${f.text}\n`);
    }
    return blocks.join("\n");
  }

  toJson(meta = {}) {
    return JSON.stringify(
      {
        generator: "ASR Hub demo page",
        exported_at: new Date().toISOString(),
        ...meta,
        sessions: [...this.sessions.values()].map((s) => ({
          session_id: s.session_id,
          provider: s.provider,
          language: s.language,
          transport: s.transport,
          turn: s.turn,
          started_at: s.started_at,
          timeline_offset_ms: s.baseMs,
          audio_ms: s.audioMs,
        })),
        utterances: this.finals.map(({ seq, ...f }) => f),
        text: this.finals.filter((f) => f.text).map((f) => f.text).join(" "),
      },
      null,
      2,
    ) + "\n";
  }
}

function num(v) {
  return typeof v === "number" && isFinite(v) ? Math.max(0, Math.round(v)) : 0;
}

function pad(n, w = 2) {
  return String(n).padStart(w, "0");
}

/** 3723456 → "01:02:03,456" */
export function srtTime(ms) {
  const t = Math.max(0, Math.round(ms));
  const h = Math.floor(t / 3600000);
  const m = Math.floor((t % 3600000) / 60000);
  const s = Math.floor((t % 60000) / 1000);
  return `${pad(h)}:${pad(m)}:${pad(s)},${pad(t % 1000, 3)}`;
}

/** 83456 → "1:23.4" (and "1:02:03.4" past an hour) */
export function clockTime(ms) {
  const t = Math.max(0, Math.round(ms));
  const h = Math.floor(t / 3600000);
  const m = Math.floor((t % 3600000) / 60000);
  const s = Math.floor((t % 60000) / 1000);
  const tenth = Math.floor((t % 1000) / 100);
  return h ? `${h}:${pad(m)}:${pad(s)}.${tenth}` : `${m}:${pad(s)}.${tenth}`;
}

/** Split a partial into (stable, unstable) for display. */
export function splitPartial(text, stable) {
  text = text || "";
  stable = stable || "";
  if (text.startsWith(stable)) return [stable, text.slice(stable.length)];
  // stable_text should be a prefix of text; if not, show the longest common prefix as stable.
  let i = 0;
  while (i < text.length && i < stable.length && text[i] === stable[i]) i++;
  return [text.slice(0, i), text.slice(i)];
}
