// ASR Hub demo page: wiring between the UI, the audio sources and a session.
//
// Page URL parameters (all optional):
//   hub=<base URL>        talk to another hub than the one serving the page
//   token=<api key>       sent as ?token= (WebSocket, EventSource), Bearer (fetch), auth (Socket.IO)
//   transport=ws|sse|sio  preselect the transport
//   provider=<name>       preselect a provider
//   reconnect_s=<n>       give up reconnecting after n seconds (default 30)

import { startMicrophone, decodeFileTo16k, FileStreamer, levelToMeter, pcm16Rms } from "./audio.js";
import { createTransport } from "./transports.js";
import { SessionController } from "./session.js";
import { Transcript, clockTime, splitPartial } from "./transcript.js";
import { describeError, describeEnded } from "./errors.js";

const $ = (id) => document.getElementById(id);
const el = {
  status: $("status"),
  transport: $("transport"),
  provider: $("provider"),
  providerInfo: $("provider-info"),
  language: $("language"),
  languageList: $("language-list"),
  interim: $("interim"),
  wordTs: $("word-timestamps"),
  vadEnabled: $("vad-enabled"),
  vadSilence: $("vad-silence"),
  apiKey: $("api-key"),
  mic: $("mic-toggle"),
  micLabel: document.querySelector("#mic-toggle .label"),
  level: $("level"),
  speech: $("speech-indicator"),
  speechLabel: document.querySelector("#speech-indicator .label"),
  fileInput: $("file-input"),
  fileStatus: $("file-status"),
  fileName: $("file-name"),
  fileProgress: $("file-progress"),
  flush: $("flush"),
  error: $("error"),
  notice: $("notice"),
  sessionInfo: $("session-info"),
  scroll: $("transcript-scroll"),
  emptyHint: $("empty-hint"),
  finals: $("finals"),
  partial: $("partial"),
  partialStable: $("partial-stable"),
  partialUnstable: $("partial-unstable"),
  exportTxt: $("export-txt"),
  exportSrt: $("export-srt"),
  exportJson: $("export-json"),
  clear: $("clear"),
};

const params = new URLSearchParams(location.search);
const hubBase = params.get("hub") || location.origin;
const giveUpMs = Math.max(1, Number(params.get("reconnect_s")) || 30) * 1000;
if (params.get("token")) el.apiKey.value = params.get("token");
if (["ws", "sse", "sio"].includes(params.get("transport"))) el.transport.value = params.get("transport");

const transcript = new Transcript();
/** @type {Map<string, object>} provider name → entry of GET /v1/providers */
const providers = new Map();

// The one running session (or none).
const run = {
  phase: "idle", // idle | starting | running | finishing
  mode: null, // "mic" | "file"
  controller: null,
  mic: null,
  streamer: null,
  partialKey: null,
  meter: 0,
  conn: "idle", // last session state
};

// ---------------------------------------------------------------------------
// Status, errors, notices

const STATUS_TEXT = {
  idle: () => "Ready",
  connecting: () => "Connecting…",
  open: (d) => `Connected · ${d.transport}`,
  reconnecting: (d) => `Reconnecting…${d.attempt > 1 ? ` (${d.attempt})` : ""}`,
  closed: () => "Session ended",
  error: (d) =>
    ["reconnect_failed", "server_unreachable", "timeout", "sio_unavailable"].includes(d.code) ? "Server unreachable" : "Stopped by an error",
};

function setStatus(state, detail = {}) {
  el.status.dataset.state = state;
  el.status.textContent = STATUS_TEXT[state](detail);
}

function showError(code, detail) {
  if (!code) {
    el.error.dataset.code = "";
    el.error.textContent = "";
    el.error.removeAttribute("title");
    return;
  }
  el.error.dataset.code = code;
  el.error.textContent = describeError(code, detail);
  if (detail && detail !== el.error.textContent) el.error.title = String(detail);
  else el.error.removeAttribute("title");
}

let noticeTimer = null;
function showNotice(text, sticky = false) {
  clearTimeout(noticeTimer);
  el.notice.textContent = text || "";
  if (text && !sticky) noticeTimer = setTimeout(() => (el.notice.textContent = ""), 6000);
}

// ---------------------------------------------------------------------------
// Providers

async function loadProviders() {
  const headers = {};
  const token = el.apiKey.value.trim();
  if (token) headers.Authorization = `Bearer ${token}`;
  let list = null;
  try {
    const res = await fetch(new URL("/v1/providers", hubBase), { headers });
    if (res.ok) list = await res.json();
    if (list && !Array.isArray(list)) list = list.providers || list.data || null;
  } catch {
    list = null;
  }
  el.provider.replaceChildren();
  providers.clear();
  if (!Array.isArray(list) || list.length === 0) {
    el.provider.append(new Option("Server default", ""));
    if (list === null) showNotice(describeError("providers_unavailable"), true);
    updateProviderInfo();
    return;
  }
  const wanted = params.get("provider");
  let firstAvailable = null;
  let preferred = null;
  for (const p of list) {
    if (!p || !p.name) continue;
    providers.set(p.name, p);
    const available = p.status === "available";
    const model = p.model ? ` · ${p.model}` : "";
    const label = available ? `${p.name}${model}` : `${p.name} — unavailable${p.reason ? `: ${p.reason}` : ""}`;
    const opt = new Option(label, p.name);
    opt.disabled = !available;
    opt.dataset.status = p.status || "unknown";
    if (!available) {
      opt.className = "unavailable";
      opt.title = p.reason || "not available";
    }
    el.provider.append(opt);
    if (available && !firstAvailable) firstAvailable = p.name;
    if (available && (p.default === true || p.is_default === true)) preferred = p.name;
    if (available && wanted === p.name) preferred = wanted;
  }
  const pick = preferred || firstAvailable;
  if (pick) el.provider.value = pick;
  else {
    // Nothing available: let the hub decide (and explain) rather than block the page.
    const opt = new Option("Server default", "");
    el.provider.prepend(opt);
    el.provider.value = "";
  }
  updateProviderInfo();
}

function updateProviderInfo() {
  const p = providers.get(el.provider.value);
  el.languageList.replaceChildren();
  if (!p) {
    el.providerInfo.textContent = "";
    el.wordTs.disabled = run.phase !== "idle";
    el.interim.disabled = run.phase !== "idle";
    return;
  }
  const caps = p.capabilities || {};
  const bits = [];
  bits.push(caps.streaming ? "native streaming" : "streamed by the hub");
  if (caps.interim) bits.push("interim results");
  if (caps.word_timestamps) bits.push("word timestamps");
  const langs = Array.isArray(caps.languages) ? caps.languages : [];
  if (langs.length) bits.push(`languages: ${langs.length > 8 ? `${langs.slice(0, 8).join(", ")} +${langs.length - 8}` : langs.join(", ")}`);
  el.providerInfo.textContent = bits.join(" · ");
  for (const l of ["auto", ...langs]) el.languageList.append(new Option(l, l));
  const locked = run.phase !== "idle";
  el.wordTs.disabled = locked || caps.word_timestamps === false;
  if (caps.word_timestamps === false) el.wordTs.checked = false;
  el.interim.disabled = locked || caps.interim === false;
  if (caps.interim === false) el.interim.checked = false;
}

// ---------------------------------------------------------------------------
// The StartSession body (DESIGN §3.1; unknown fields are rejected by the hub)

function buildStart() {
  const start = {
    audio: { encoding: "pcm_s16le", sample_rate: 16000, channels: 1 },
    interim_results: el.interim.checked,
  };
  if (el.provider.value) start.provider = el.provider.value;
  const lang = el.language.value.trim();
  if (lang) start.language = lang;
  if (el.wordTs.checked && !el.wordTs.disabled) start.word_timestamps = true;
  const vad = { enabled: el.vadEnabled.checked };
  const silence = parseInt(el.vadSilence.value, 10);
  if (Number.isFinite(silence) && silence > 0) vad.silence_ms = silence;
  start.vad = vad;
  return start;
}

// ---------------------------------------------------------------------------
// Session lifecycle

function newController({ restartOnResumeFailure }) {
  const transport = createTransport(el.transport.value, { hubBase, token: el.apiKey.value.trim() });
  const controller = new SessionController({
    transport,
    start: buildStart(),
    giveUpMs,
    restartOnResumeFailure,
    onEvent: (ev) => {
      if (run.controller === controller) onHubEvent(ev, transport.label);
    },
    onState: (state, detail) => {
      if (run.controller === controller) onSessionState(state, detail);
    },
    onError: (code, message) => {
      if (run.controller === controller) showError(code, message);
    },
    onNotice: (text) => {
      if (run.controller === controller) showNotice(text);
    },
  });
  return controller;
}

async function startMic() {
  if (run.phase !== "idle") return;
  beginRun("mic");
  showError(null);
  showNotice("");
  const controller = newController({ restartOnResumeFailure: true });
  run.controller = controller;
  try {
    run.mic = await startMicrophone({
      onFrame: (buf) => controller.sendAudio(buf),
      onLevel: (rms) => setLevel(levelToMeter(rms * 1.4)),
      onEnded: () => {
        if (run.controller === controller) {
          showError("mic_ended");
          stopRun();
        }
      },
    });
  } catch (err) {
    run.controller = null;
    showError(err.code || "mic_unsupported", err.message);
    endRun();
    return;
  }
  if (run.controller !== controller) {
    // Stopped while the permission prompt was up.
    run.mic.stop();
    return;
  }
  controller.open().catch(() => {});
}

async function startFile(file) {
  if (run.phase !== "idle" || !file) return;
  beginRun("file");
  showError(null);
  showNotice("");
  el.fileStatus.hidden = false;
  el.fileName.textContent = `Decoding ${file.name}…`;
  el.fileProgress.value = 0;
  let decoded;
  try {
    decoded = await decodeFileTo16k(file);
  } catch (err) {
    showError(err.code || "decode_failed", err.message);
    endRun();
    return;
  }
  if (run.mode !== "file" || run.phase !== "starting") return; // cancelled meanwhile
  el.fileName.textContent = `${file.name} · ${clockTime(decoded.durationMs)}`;
  const controller = newController({ restartOnResumeFailure: false });
  run.controller = controller;
  run.streamer = new FileStreamer(decoded.pcm, {
    onFrame: (buf, int16) => {
      controller.sendAudio(buf);
      setLevel(levelToMeter(pcm16Rms(int16) * 1.4));
    },
    onProgress: (sent, total) => {
      el.fileProgress.value = total ? sent / total : 1;
    },
    onDone: () => {
      if (run.controller === controller) stopRun();
    },
  });
  controller.open().catch(() => {});
}

function beginRun(mode) {
  run.phase = "starting";
  run.mode = mode;
  lockSettings(true);
  renderMicButton();
}

/** The user (or end of file) asks to finish: send stop, wait for session.ended. */
async function stopRun() {
  if (run.phase === "idle" || run.phase === "finishing") return;
  const controller = run.controller;
  if (!controller) {
    endRun(); // still decoding or waiting for permission
    return;
  }
  run.phase = "finishing";
  renderMicButton();
  if (run.streamer) run.streamer.cancel();
  if (run.mic) {
    const mic = run.mic;
    run.mic = null;
    await mic.stop(); // flushes the last partial frame through onFrame
  }
  setLevel(0);
  controller.stop();
}

/** Tear down local resources once the session is over. */
function endRun() {
  if (run.streamer) run.streamer.cancel();
  if (run.mic) run.mic.stop();
  run.mic = null;
  run.streamer = null;
  run.controller = null;
  run.phase = "idle";
  run.mode = null;
  setSpeaking(false);
  setLevel(0, true);
  clearPartial();
  lockSettings(false);
  renderMicButton();
  el.fileInput.value = "";
  el.fileStatus.hidden = true;
}

function onSessionState(state, detail) {
  run.conn = state;
  setStatus(state, detail);
  if (state === "open") {
    if (run.phase === "starting") run.phase = "running";
    if (run.streamer && run.phase === "running") run.streamer.start();
    renderMicButton();
  } else if (state === "reconnecting") {
    if (run.streamer) run.streamer.pause();
    setSpeaking(false);
    renderMicButton();
  } else if (state === "closed" || state === "error") {
    endRun();
  }
}

function onHubEvent(ev, transportLabel) {
  switch (ev.type) {
    case "session.started": {
      transcript.beginSession(ev.session_id, { provider: ev.provider, language: ev.language, transport: transportLabel });
      renderSessionInfo(ev.session_id);
      break;
    }
    case "speech.started":
      setSpeaking(true);
      break;
    case "speech.ended":
      setSpeaking(false);
      break;
    case "transcript.partial":
      showPartial(ev);
      break;
    case "transcript.final":
      addFinal(ev);
      break;
    case "provider.switched": {
      const s = transcript.sessions.get(ev.session_id);
      if (s) s.provider = ev.to;
      renderSessionInfo(ev.session_id);
      showNotice(`Switched speech engine from ${ev.from} to ${ev.to}${ev.reason ? ` (${ev.reason})` : ""}.`);
      break;
    }
    case "wakeword.detected":
      showNotice(`Wake word “${ev.phrase}” heard at ${clockTime(ev.offset_ms || 0)}.`);
      break;
    case "error":
      showError(ev.code || "internal", ev.message);
      break;
    case "session.ended":
      setSpeaking(false);
      clearPartial();
      transcript.endSession(ev.session_id, ev.stats);
      if (ev.reason !== "error") showNotice(describeEnded(ev.reason) + statsText(ev.stats));
      break;
    default:
      break;
  }
}

function statsText(stats) {
  if (!stats || typeof stats.audio_ms !== "number") return "";
  const n = typeof stats.utterances === "number" ? `, ${stats.utterances} utterance${stats.utterances === 1 ? "" : "s"}` : "";
  return ` ${clockTime(stats.audio_ms)} of audio${n}.`;
}

// ---------------------------------------------------------------------------
// Rendering

function renderMicButton() {
  const b = el.mic;
  let state = "idle";
  let label = "Start microphone";
  if (run.phase === "finishing") {
    state = "finishing";
    label = "Finishing…";
  } else if (run.phase !== "idle") {
    state = run.mode === "file" ? "file" : "recording";
    label = run.mode === "file" ? "Stop file" : "Stop microphone";
  }
  b.dataset.state = state;
  b.setAttribute("aria-pressed", String(state === "recording"));
  b.disabled = state === "finishing";
  el.micLabel.textContent = label;
  el.flush.disabled = !(run.phase === "running" && run.conn === "open");
  el.fileInput.disabled = run.phase !== "idle";
  el.fileInput.closest(".file-row").classList.toggle("disabled", run.phase !== "idle");
}

function lockSettings(locked) {
  for (const c of [el.transport, el.provider, el.language, el.vadEnabled, el.apiKey]) c.disabled = locked;
  el.vadSilence.disabled = locked || !el.vadEnabled.checked;
  updateProviderInfo();
}

function renderSessionInfo(sessionId) {
  const s = transcript.sessions.get(sessionId);
  if (!s) return;
  const parts = [`Session ${shortId(s.session_id)}`];
  if (s.provider) parts.push(s.provider);
  if (s.language) parts.push(s.language);
  if (s.transport) parts.push(s.transport);
  el.sessionInfo.textContent = parts.join(" · ");
  el.sessionInfo.title = s.session_id;
}

function shortId(id) {
  return id && id.length > 12 ? `${id.slice(0, 8)}…` : id;
}

function setSpeaking(on) {
  el.speech.dataset.speaking = String(on);
  el.speechLabel.textContent = on ? "Speech" : "Silence";
}

function setLevel(v, immediate = false) {
  // Fast attack, slow release.
  run.meter = immediate || v >= run.meter ? v : Math.max(v, run.meter - 0.04);
  el.level.value = run.meter;
  el.level.textContent = `${Math.round(run.meter * 100)}%`;
}

function partialKey(ev) {
  return `${ev.session_id || ""}\u0000${ev.utterance_id}`;
}

function showPartial(ev) {
  if (transcript.hasFinal(ev.session_id, ev.utterance_id)) return; // late partial of a finished utterance
  const [stable, unstable] = splitPartial(ev.text, ev.stable_text);
  run.partialKey = partialKey(ev);
  el.partial.dataset.utteranceId = ev.utterance_id != null ? String(ev.utterance_id) : "";
  el.partialStable.textContent = stable;
  el.partialUnstable.textContent = unstable;
  el.partial.classList.toggle("active", !!(stable || unstable));
  updateEmpty();
  autoScroll();
}

function clearPartial() {
  run.partialKey = null;
  el.partial.dataset.utteranceId = "";
  el.partialStable.textContent = "";
  el.partialUnstable.textContent = "";
  el.partial.classList.remove("active");
  updateEmpty();
}

function addFinal(ev) {
  const { entry, replaced } = transcript.addFinal(ev);
  if (run.partialKey === partialKey(ev)) clearPartial();
  const li = document.createElement("li");
  li.className = entry.text ? "final" : "final empty";
  li.dataset.utteranceId = entry.utterance_id;
  if (entry.session_id) li.dataset.sessionId = entry.session_id;
  li.dataset.startMs = String(entry.start_ms);
  li.dataset.endMs = String(entry.end_ms);

  const meta = document.createElement("div");
  meta.className = "final-meta";
  const time = document.createElement("span");
  time.className = "final-time";
  time.textContent = `${clockTime(entry.start_ms)}–${clockTime(entry.end_ms)}`;
  time.title = `${entry.start_ms}–${entry.end_ms} ms`;
  meta.append(time);
  if (entry.provider) {
    const p = document.createElement("span");
    p.className = "final-provider";
    p.textContent = entry.provider;
    meta.append(p);
  }
  if (entry.latency_ms != null) {
    const l = document.createElement("span");
    l.className = "final-latency";
    l.textContent = `${Math.round(entry.latency_ms)} ms`;
    l.title = "Latency: end of speech → final transcript";
    meta.append(l);
  }
  const text = document.createElement("p");
  text.className = "final-text";
  text.textContent = entry.text;
  li.append(meta, text);

  const selector = `.final[data-utterance-id="${cssEscape(entry.utterance_id)}"][data-session-id="${cssEscape(entry.session_id || "")}"]`;
  const old = replaced ? el.finals.querySelector(selector) : null;
  if (old) old.replaceWith(li);
  else el.finals.append(li);
  updateEmpty();
  autoScroll();
}

function cssEscape(s) {
  return window.CSS && CSS.escape ? CSS.escape(s) : String(s).replace(/["\\]/g, "\\$&");
}

function updateEmpty() {
  const empty = transcript.isEmpty && !el.partial.classList.contains("active");
  el.emptyHint.hidden = !empty;
  for (const b of [el.exportTxt, el.exportSrt, el.exportJson, el.clear]) b.disabled = transcript.isEmpty;
}

let stickToBottom = true;
el.scroll.addEventListener("scroll", () => {
  const s = el.scroll;
  stickToBottom = s.scrollHeight - s.scrollTop - s.clientHeight < 48;
});
function autoScroll() {
  if (stickToBottom) el.scroll.scrollTop = el.scroll.scrollHeight;
}

// ---------------------------------------------------------------------------
// Export

function download(filename, mime, content) {
  const blob = new Blob([content], { type: mime });
  const url = URL.createObjectURL(blob);
  const a = document.createElement("a");
  a.href = url;
  a.download = filename;
  a.rel = "noopener";
  document.body.append(a);
  a.click();
  a.remove();
  setTimeout(() => URL.revokeObjectURL(url), 10000);
}

function exportName(ext) {
  const d = new Date();
  const p = (n) => String(n).padStart(2, "0");
  return `transcript-${d.getFullYear()}${p(d.getMonth() + 1)}${p(d.getDate())}-${p(d.getHours())}${p(d.getMinutes())}${p(d.getSeconds())}.${ext}`;
}

el.exportTxt.addEventListener("click", () => download(exportName("txt"), "text/plain;charset=utf-8", transcript.toText()));
el.exportSrt.addEventListener("click", () => download(exportName("srt"), "application/x-subrip;charset=utf-8", transcript.toSrt()));
el.exportJson.addEventListener("click", () =>
  download(exportName("json"), "application/json", transcript.toJson({ hub: hubBase })),
);
el.clear.addEventListener("click", () => {
  transcript.clear();
  el.finals.replaceChildren();
  el.sessionInfo.textContent = "";
  if (run.phase === "idle") clearPartial();
  updateEmpty();
});

// ---------------------------------------------------------------------------
// Controls

function toggleMic() {
  if (run.phase === "idle") startMic();
  else stopRun();
}

el.mic.addEventListener("click", toggleMic);
el.flush.addEventListener("click", () => run.controller && run.controller.flush());
el.fileInput.addEventListener("change", () => {
  const file = el.fileInput.files && el.fileInput.files[0];
  if (file) startFile(file);
});
el.provider.addEventListener("change", updateProviderInfo);
el.vadEnabled.addEventListener("change", () => {
  el.vadSilence.disabled = !el.vadEnabled.checked || run.phase !== "idle";
});
el.apiKey.addEventListener("change", () => loadProviders());

// Space toggles the microphone anywhere on the page except while typing in a
// text field. On buttons/checkboxes/selects the native Space action is
// suppressed (keydown and keyup), so a focused control never double-acts.
const NON_TEXT_INPUTS = new Set(["button", "checkbox", "radio", "range", "color", "file", "submit", "reset", "image"]);
function isTextEntry(t) {
  if (!t || t === document.body || !(t instanceof Element)) return false;
  if (t.isContentEditable || t.closest("textarea, [contenteditable]:not([contenteditable=false]), [role=textbox]")) return true;
  return t.tagName === "INPUT" && !NON_TEXT_INPUTS.has((t.type || "text").toLowerCase());
}
function isSpace(e) {
  return e.code === "Space" || e.key === " ";
}
document.addEventListener(
  "keydown",
  (e) => {
    if (!isSpace(e) || e.ctrlKey || e.metaKey || e.altKey || isTextEntry(e.target)) return;
    e.preventDefault();
    if (!e.repeat) toggleMic();
  },
  true,
);
document.addEventListener(
  "keyup",
  (e) => {
    if (isSpace(e) && !isTextEntry(e.target)) e.preventDefault(); // no native click on a focused button
  },
  true,
);

window.addEventListener("pagehide", () => {
  if (run.controller) run.controller.abort();
});

// ---------------------------------------------------------------------------
// Start-up

setStatus("idle");
renderMicButton();
updateEmpty();
loadProviders();
