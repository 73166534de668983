// AudioWorklet processor: microphone → 16 kHz mono PCM16 frames.
//
// Runs on the audio rendering thread. Input arrives in 128-sample render
// quanta at the AudioContext rate (usually 44.1 or 48 kHz). Each quantum is
// downmixed to mono, low-pass filtered (windowed-sinc FIR, cutoff 0.45 × the
// target rate so nothing above 7.2 kHz folds back), and linearly interpolated
// at the 16 kHz sample positions. Output is packed into little-endian int16
// frames of `frameMs` (default 20 ms = 320 samples) and posted to the main
// thread as transferable ArrayBuffers. A level reading (RMS and peak of the
// raw input) is posted every `levelMs`.
//
// Messages from the main thread:
//   {type: "flush"} → post the partly filled frame (if any), then {type: "flushed"}
//   {type: "stop"}  → stop processing (the node can then be disconnected)
// Messages to the main thread:
//   {type: "audio", buffer: ArrayBuffer}     (pcm_s16le, 16000 Hz, mono)
//   {type: "level", rms: number, peak: number}  (linear, 0..1)
//   {type: "flushed"}

/* global sampleRate, registerProcessor, AudioWorkletProcessor */

class LowpassLinearResampler {
  /**
   * @param {number} inRate  input sample rate (Hz)
   * @param {number} outRate output sample rate (Hz)
   */
  constructor(inRate, outRate) {
    this.inRate = inRate;
    this.outRate = outRate;
    this.passthrough = inRate === outRate;
    this.outIndex = 0; // index of the next output sample (absolute)
    if (this.passthrough) return;

    // Cutoff in cycles per input sample: 0.45 × the lower of the two rates.
    const cutoff = (0.45 * Math.min(inRate, outRate)) / inRate;
    const ratio = Math.max(1, inRate / outRate);
    let taps = Math.max(31, Math.ceil(40 * ratio));
    if (taps % 2 === 0) taps += 1;
    const half = (taps - 1) / 2;
    const h = new Float32Array(taps);
    let sum = 0;
    for (let i = 0; i < taps; i++) {
      const x = i - half;
      const sinc = x === 0 ? 2 * cutoff : Math.sin(2 * Math.PI * cutoff * x) / (Math.PI * x);
      // Blackman window: ~-74 dB side lobes.
      const w = 0.42 - 0.5 * Math.cos((2 * Math.PI * i) / (taps - 1)) + 0.08 * Math.cos((4 * Math.PI * i) / (taps - 1));
      h[i] = sinc * w;
      sum += h[i];
    }
    for (let i = 0; i < taps; i++) h[i] /= sum; // unity gain at DC
    this.h = h;
    this.half = half;
    // History buffer of input samples. buf[0] holds absolute input index
    // `bufStart`. It starts with `half` zeros so the first output sample
    // (centred on input index 0) has a full filter window.
    this.buf = new Float32Array(taps + 4096);
    this.len = half;
    this.bufStart = -half;
  }

  /** Filtered value at absolute input index i (needs i-half .. i+half in the buffer). */
  fir(i) {
    const h = this.h;
    const buf = this.buf;
    const off = i - this.half - this.bufStart;
    let acc = 0;
    for (let j = 0; j < h.length; j++) acc += h[j] * buf[off + j];
    return acc;
  }

  /**
   * Feed input samples; call emit(sample) for every output sample now computable.
   * @param {Float32Array} input
   * @param {(s: number) => void} emit
   */
  process(input, emit) {
    if (this.passthrough) {
      for (let i = 0; i < input.length; i++) emit(input[i]);
      return;
    }
    // Append input to the history buffer (grow if needed).
    if (this.len + input.length > this.buf.length) {
      const bigger = new Float32Array((this.len + input.length) * 2);
      bigger.set(this.buf.subarray(0, this.len));
      this.buf = bigger;
    }
    this.buf.set(input, this.len);
    this.len += input.length;

    const end = this.bufStart + this.len; // one past the last available input index
    const half = this.half;
    for (;;) {
      // Exact position of output sample k on the input timeline: k·in/out.
      const t = (this.outIndex * this.inRate) / this.outRate;
      const i0 = Math.floor(t);
      if (i0 + 1 + half >= end) break; // need input up to i0+1+half
      const frac = t - i0;
      const y0 = this.fir(i0);
      const y = frac > 0 ? y0 + (this.fir(i0 + 1) - y0) * frac : y0;
      emit(y);
      this.outIndex++;
    }
    // Drop history no output sample will need again.
    const nextT = (this.outIndex * this.inRate) / this.outRate;
    const keepFrom = Math.floor(nextT) - half;
    const drop = keepFrom - this.bufStart;
    if (drop > 0) {
      this.buf.copyWithin(0, drop, this.len);
      this.len -= drop;
      this.bufStart = keepFrom;
    }
  }
}

class Pcm16CaptureProcessor extends AudioWorkletProcessor {
  constructor(options) {
    super();
    const opts = (options && options.processorOptions) || {};
    this.targetRate = opts.targetRate || 16000;
    const frameMs = Math.min(40, Math.max(10, opts.frameMs || 20));
    this.frameSamples = Math.round((this.targetRate * frameMs) / 1000);
    this.resampler = new LowpassLinearResampler(sampleRate, this.targetRate);
    this.frame = new Int16Array(this.frameSamples);
    this.fill = 0;
    this.mono = new Float32Array(128);
    this.stopped = false;

    // Level metering over ~levelMs of input.
    this.levelEvery = Math.round((sampleRate * (opts.levelMs || 50)) / 1000);
    this.levelCount = 0;
    this.levelSumSq = 0;
    this.levelPeak = 0;

    this.emit = (s) => {
      const c = s > 1 ? 1 : s < -1 ? -1 : s;
      this.frame[this.fill++] = c < 0 ? Math.round(c * 32768) : Math.round(c * 32767);
      if (this.fill === this.frameSamples) this.postFrame();
    };

    this.port.onmessage = (e) => {
      const msg = e.data || {};
      if (msg.type === "flush") {
        if (this.fill > 0) this.postFrame();
        this.port.postMessage({ type: "flushed" });
      } else if (msg.type === "stop") {
        this.stopped = true;
      }
    };
  }

  postFrame() {
    const out = this.frame.slice(0, this.fill); // copy (little-endian on every platform browsers run on)
    this.port.postMessage({ type: "audio", buffer: out.buffer }, [out.buffer]);
    this.fill = 0;
  }

  process(inputs) {
    if (this.stopped) return false;
    const input = inputs[0];
    if (!input || input.length === 0 || !input[0]) return true; // not connected yet
    const n = input[0].length;
    if (this.mono.length < n) this.mono = new Float32Array(n);
    const mono = this.mono.length === n ? this.mono : this.mono.subarray(0, n);
    const channels = input.length;
    if (channels === 1) {
      mono.set(input[0]);
    } else {
      mono.fill(0);
      for (let c = 0; c < channels; c++) {
        const ch = input[c];
        for (let i = 0; i < n; i++) mono[i] += ch[i];
      }
      const g = 1 / channels;
      for (let i = 0; i < n; i++) mono[i] *= g;
    }

    for (let i = 0; i < n; i++) {
      const s = mono[i];
      this.levelSumSq += s * s;
      const a = s < 0 ? -s : s;
      if (a > this.levelPeak) this.levelPeak = a;
    }
    this.levelCount += n;
    if (this.levelCount >= this.levelEvery) {
      this.port.postMessage({
        type: "level",
        rms: Math.sqrt(this.levelSumSq / this.levelCount),
        peak: this.levelPeak,
      });
      this.levelCount = 0;
      this.levelSumSq = 0;
      this.levelPeak = 0;
    }

    this.resampler.process(mono, this.emit);
    return true;
  }
}

registerProcessor("pcm16-capture", Pcm16CaptureProcessor);
