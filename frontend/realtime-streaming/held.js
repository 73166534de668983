// The audio the page still holds for a takeover (docs/PROTOCOL.md "Held audio").
//
// Every transcript.final settles the session's timeline up to its end_ms: the
// audio before it is no longer needed. The page keeps what it sent after the
// last final (pcm_s16le, 16 kHz mono), at most `limitMs` of it, the oldest
// dropped first. When the session's hub node dies and another takes it over,
// session.migrated says from where the new node needs the audio again
// (audio_from_ms): since() gives it, after silence standing for any part no
// longer held, so the session keeps one timeline and the utterance that was
// open is decoded again.

const BYTES_PER_MS = 32; // pcm_s16le mono @ 16 kHz
const FRAME = 2; // bytes per sample

export class HeldAudio {
  /** @param {number} limitMs  the most audio held (the hub's limits.replay_audio_s; 0: none) */
  constructor(limitMs) {
    this.limit = Math.max(0, Math.floor(limitMs)) * BYTES_PER_MS;
    this.chunks = []; // {pos: byte position in the session's audio, buf: Uint8Array}
    this.sent = 0; // bytes sent so far (the position of the next)
  }

  get enabled() {
    return this.limit > 0;
  }

  /** `buf` (an ArrayBuffer) was sent: the next audio of the session. */
  add(buf) {
    if (this.enabled) this.chunks.push({ pos: this.sent, buf: new Uint8Array(buf.slice(0)) });
    this.sent += buf.byteLength;
    this.forget(this.sent - this.limit);
  }

  /** A final ended at `endMs`: the audio before it is no longer needed. */
  settled(endMs) {
    if (Number.isFinite(endMs)) this.forget(endMs * BYTES_PER_MS);
  }

  forget(before) {
    while (this.chunks.length && this.chunks[0].pos + this.chunks[0].buf.byteLength <= before) this.chunks.shift();
    const first = this.chunks[0];
    if (first && first.pos < before) {
      const cut = Math.floor((before - first.pos) / FRAME) * FRAME;
      this.chunks[0] = { pos: first.pos + cut, buf: first.buf.subarray(cut) };
    }
  }

  /**
   * The audio to send again from `fromMs`, in chunks of at most 100 ms, and the
   * milliseconds of silence at its start standing for audio no longer held.
   * @returns {{chunks: ArrayBuffer[], gapMs: number}}
   */
  since(fromMs) {
    if (!this.enabled) return { chunks: [], gapMs: 0 };
    const pos = Math.min(Math.max(0, Math.floor(fromMs)) * BYTES_PER_MS, this.sent);
    const start = this.chunks.length ? this.chunks[0].pos : this.sent;
    const gap = Math.max(0, start - pos);
    const parts = [];
    if (gap) parts.push(new Uint8Array(Math.floor(gap / FRAME) * FRAME)); // zeros: silence
    for (const { pos: p, buf } of this.chunks) {
      if (p + buf.byteLength <= pos) continue;
      parts.push(buf.subarray(Math.max(0, pos - p)));
    }
    const total = parts.reduce((n, b) => n + b.byteLength, 0);
    const all = new Uint8Array(total);
    let at = 0;
    for (const b of parts) {
      all.set(b, at);
      at += b.byteLength;
    }
    const step = 100 * BYTES_PER_MS;
    const chunks = [];
    for (let i = 0; i < total; i += step) chunks.push(all.slice(i, i + step).buffer);
    return { chunks, gapMs: Math.floor(gap / BYTES_PER_MS) };
  }
}
