// Audio sources for the demo page: the microphone (via the AudioWorklet in
// worklet.js) and an uploaded file (decoded in the browser, resampled to
// 16 kHz mono with an OfflineAudioContext, streamed at real-time pace).
// Both produce pcm_s16le / 16000 Hz / mono frames of FRAME_MS.

export const TARGET_RATE = 16000;
export const FRAME_MS = 20;
const FRAME_SAMPLES = (TARGET_RATE * FRAME_MS) / 1000;

/** An Error with a stable client-side code (see errors.js). */
export class AudioSourceError extends Error {
  constructor(code, message, cause) {
    super(message);
    this.code = code;
    this.cause = cause;
  }
}

/** Map a linear amplitude (0..1) to a 0..1 meter value on a -60..0 dBFS scale. */
export function levelToMeter(linear) {
  if (!(linear > 0)) return 0;
  const db = 20 * Math.log10(linear);
  return Math.max(0, Math.min(1, (db + 60) / 60));
}

/** RMS (linear, 0..1) of an int16 frame. */
export function pcm16Rms(int16) {
  if (!int16.length) return 0;
  let acc = 0;
  for (let i = 0; i < int16.length; i++) acc += int16[i] * int16[i];
  return Math.sqrt(acc / int16.length) / 32768;
}

/**
 * Start capturing the microphone.
 * @param {{onFrame:(buf:ArrayBuffer)=>void, onLevel:(rms:number, peak:number)=>void, onEnded?:()=>void}} cb
 * @returns {Promise<{stop:()=>Promise<void>, sampleRate:number}>}
 */
export async function startMicrophone({ onFrame, onLevel, onEnded }) {
  if (!window.isSecureContext) {
    throw new AudioSourceError("insecure_context", "The microphone needs HTTPS or localhost.");
  }
  if (!navigator.mediaDevices || !navigator.mediaDevices.getUserMedia) {
    throw new AudioSourceError("mic_unsupported", "This browser cannot capture audio.");
  }
  if (typeof AudioWorkletNode === "undefined") {
    throw new AudioSourceError("mic_unsupported", "This browser has no AudioWorklet support.");
  }
  let stream;
  try {
    stream = await navigator.mediaDevices.getUserMedia({
      audio: {
        // The browser's voice processing clips and pumps levels; raw audio
        // recognises better (DESIGN §4 "browser capture").
        echoCancellation: false,
        noiseSuppression: false,
        autoGainControl: false,
        channelCount: { ideal: 1 },
      },
      video: false,
    });
  } catch (err) {
    const name = err && err.name;
    if (name === "NotAllowedError" || name === "SecurityError") {
      throw new AudioSourceError("mic_denied", "Microphone permission denied.", err);
    }
    if (name === "NotFoundError" || name === "OverconstrainedError") {
      throw new AudioSourceError("mic_not_found", "No microphone found.", err);
    }
    if (name === "NotReadableError" || name === "AbortError") {
      throw new AudioSourceError("mic_busy", "The microphone is in use or unavailable.", err);
    }
    throw new AudioSourceError("mic_unsupported", String((err && err.message) || err), err);
  }

  const ctx = new AudioContext({ latencyHint: "interactive" });
  let node = null;
  let source = null;
  try {
    await ctx.audioWorklet.addModule(new URL("./worklet.js", import.meta.url));
    source = ctx.createMediaStreamSource(stream);
    node = new AudioWorkletNode(ctx, "pcm16-capture", {
      numberOfInputs: 1,
      numberOfOutputs: 1,
      outputChannelCount: [1],
      channelCountMode: "explicit",
      channelCount: 2,
      channelInterpretation: "speakers",
      processorOptions: { targetRate: TARGET_RATE, frameMs: FRAME_MS, levelMs: 50 },
    });
    source.connect(node);
    // The processor writes nothing to its output (silence); connecting it to
    // the destination keeps it pulled by the render graph in every browser.
    node.connect(ctx.destination);
    if (ctx.state === "suspended") await ctx.resume();
  } catch (err) {
    stream.getTracks().forEach((t) => t.stop());
    ctx.close().catch(() => {});
    throw new AudioSourceError("mic_unsupported", "Could not start audio processing.", err);
  }

  let flushedResolve = null;
  node.port.onmessage = (e) => {
    const msg = e.data;
    if (msg.type === "audio") onFrame(msg.buffer);
    else if (msg.type === "level") onLevel(msg.rms, msg.peak);
    else if (msg.type === "flushed" && flushedResolve) flushedResolve();
  };
  const track = stream.getAudioTracks()[0];
  let stopped = false;
  if (track && onEnded) {
    track.addEventListener("ended", () => {
      if (!stopped) onEnded();
    });
  }

  async function stop() {
    if (stopped) return;
    stopped = true;
    // Push out the partly filled last frame before tearing down.
    await new Promise((resolve) => {
      flushedResolve = resolve;
      try {
        node.port.postMessage({ type: "flush" });
      } catch {
        resolve();
      }
      setTimeout(resolve, 250);
    });
    try {
      node.port.postMessage({ type: "stop" });
    } catch {
      /* already gone */
    }
    node.port.onmessage = null;
    try {
      source.disconnect();
      node.disconnect();
    } catch {
      /* already disconnected */
    }
    stream.getTracks().forEach((t) => t.stop());
    await ctx.close().catch(() => {});
  }

  return { stop, sampleRate: ctx.sampleRate };
}

/**
 * Decode an audio file in the browser and resample it to 16 kHz mono PCM16.
 * @param {File|Blob} file
 * @returns {Promise<{pcm: Int16Array, durationMs: number, sourceRate: number, sourceChannels: number}>}
 */
export async function decodeFileTo16k(file) {
  const Offline = window.OfflineAudioContext || window.webkitOfflineAudioContext;
  if (!Offline) throw new AudioSourceError("decode_unsupported", "This browser cannot decode audio files.");
  let data;
  try {
    data = await file.arrayBuffer();
  } catch (err) {
    throw new AudioSourceError("file_unreadable", "The file could not be read.", err);
  }
  let decoded;
  try {
    // Any context can decode; decodeAudioData resamples to the context's own rate.
    const decodeCtx = new Offline(1, 1, TARGET_RATE);
    decoded = await decodeCtx.decodeAudioData(data);
  } catch (err) {
    throw new AudioSourceError("decode_failed", "The browser could not decode this file.", err);
  }
  if (!decoded || decoded.length === 0) {
    throw new AudioSourceError("decode_failed", "The file contains no audio.");
  }
  // Render through a 16 kHz mono offline graph: resamples (if the decoder did
  // not already) and downmixes with the standard "speakers" rules.
  const length = Math.max(1, Math.ceil(decoded.duration * TARGET_RATE));
  const render = new Offline(1, length, TARGET_RATE);
  const src = render.createBufferSource();
  src.buffer = decoded;
  src.connect(render.destination);
  src.start(0);
  const rendered = await render.startRendering();
  const f32 = rendered.getChannelData(0);
  const pcm = new Int16Array(f32.length);
  for (let i = 0; i < f32.length; i++) {
    const s = f32[i] > 1 ? 1 : f32[i] < -1 ? -1 : f32[i];
    pcm[i] = s < 0 ? Math.round(s * 32768) : Math.round(s * 32767);
  }
  return {
    pcm,
    durationMs: (pcm.length / TARGET_RATE) * 1000,
    sourceRate: decoded.sampleRate,
    sourceChannels: decoded.numberOfChannels,
  };
}

/**
 * Streams an Int16Array at real-time pace in FRAME_MS frames. Timer-driven
 * with drift correction: however late a timer fires (background tabs), the
 * number of samples sent tracks wall-clock time. Can be paused (while the
 * connection is being restored) and resumed without skipping audio.
 */
export class FileStreamer {
  /**
   * @param {Int16Array} pcm
   * @param {{onFrame:(buf:ArrayBuffer, int16:Int16Array)=>void, onProgress?:(sentMs:number,totalMs:number)=>void, onDone?:()=>void}} cb
   */
  constructor(pcm, { onFrame, onProgress, onDone }) {
    this.pcm = pcm;
    this.onFrame = onFrame;
    this.onProgress = onProgress || (() => {});
    this.onDone = onDone || (() => {});
    this.sent = 0;
    this.timer = null;
    this.running = false;
    this.finished = false;
    this.t0 = 0;
  }

  get totalMs() {
    return (this.pcm.length / TARGET_RATE) * 1000;
  }

  start() {
    if (this.running || this.finished) return;
    this.running = true;
    // Continue from where we are: the clock starts at "sent" samples ago.
    this.t0 = performance.now() - (this.sent / TARGET_RATE) * 1000;
    this.tick();
  }

  pause() {
    this.running = false;
    clearTimeout(this.timer);
    this.timer = null;
  }

  cancel() {
    this.pause();
    this.finished = true;
  }

  tick() {
    if (!this.running) return;
    const elapsedMs = performance.now() - this.t0;
    // Keep one frame of lead so the server never starves between timer ticks.
    const due = Math.min(this.pcm.length, Math.floor((elapsedMs / 1000) * TARGET_RATE) + FRAME_SAMPLES);
    while (this.running && this.sent < due) {
      const end = Math.min(this.sent + FRAME_SAMPLES, this.pcm.length);
      if (end - this.sent < FRAME_SAMPLES && end < this.pcm.length) break; // wait for a whole frame
      const frame = this.pcm.slice(this.sent, end); // own buffer: safe to transfer
      this.sent = end;
      this.onFrame(frame.buffer, frame);
    }
    this.onProgress((this.sent / TARGET_RATE) * 1000, this.totalMs);
    if (!this.running) return;
    if (this.sent >= this.pcm.length) {
      this.running = false;
      this.finished = true;
      this.onDone();
      return;
    }
    this.timer = setTimeout(() => this.tick(), FRAME_MS / 2);
  }
}
