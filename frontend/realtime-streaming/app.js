// ASR Hub demo page: wiring between the UI, the audio sources and a session.
//
// Page URL parameters (all optional):
//   hub=<base URL>        talk to another hub than the one serving the page
//   token=<api key>       fills the API key field, then leaves the address bar. The key itself goes only in
//                         Authorization headers (fetch); WebSocket/EventSource URLs and the Socket.IO
//                         connect carry short-lived tokens from POST /v1/tokens instead
//   transport=ws|sse|sio  preselect the transport
//   provider=<name>       preselect a provider
//   reconnect_s=<n>       give up reconnecting after n seconds (default 30)

import { startMicrophone, decodeFileTo16k, FileStreamer, levelToMeter, pcm16Rms } from "./audio.js";
import { createTransport } from "./transports.js";
import { SessionController } from "./session.js";
import { Transcript, clockTime } from "./transcript.js";
import { TranscriptView } from "./transcript-view.js";
import { fetchProviders, fillProviderSelect, describeCapabilities } from "./providers.js";
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
  turnMode: $("turn-mode"),
  turnEagerness: $("turn-eagerness"),
  turnEagernessField: $("turn-eagerness-field"),
  apiKey: $("api-key"),
  mic: $("mic-toggle"),
  micLabel: document.querySelector("#mic-toggle .label"),
  level: $("level"),
  speech: $("speech-indicator"),
  speechLabel: document.querySelector("#speech-indicator .label"),
  speechReason: $("speech-reason"),
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
if (params.get("token")) {
  el.apiKey.value = params.get("token");
  params.delete("token"); // keep the key out of the address bar, history and bookmarks
  const q = params.toString();
  history.replaceState(null, "", location.pathname + (q ? `?${q}` : "") + location.hash);
}
if (["ws", "sse", "sio"].includes(params.get("transport"))) el.transport.value = params.get("transport");

const transcript = new Transcript();
const view = new TranscriptView(transcript, el, {
  exportMeta: () => ({ hub: hubBase }),
  onClear: () => {
    el.sessionInfo.textContent = "";
    if (run.phase === "idle") view.clearPartial();
  },
});
/** @type {Map<string, object>} provider name → entry of GET /v1/providers */
let providers = new Map();

// The one running session (or none).
const run = {
  phase: "idle", // idle | starting | running | finishing
  mode: null, // "mic" | "file"
  controller: null,
  mic: null,
  streamer: null,
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
  const { list, code } = await fetchProviders(hubBase, el.apiKey.value.trim());
  providers = fillProviderSelect(el.provider, list, params.get("provider"));
  if (code === "unauthorized") showError(code);
  else if (code) showNotice(describeError(code), true);
  else if (el.error.dataset.code === "unauthorized") showError(null);
  updateProviderInfo();
}

function updateProviderInfo() {
  const p = providers.get(el.provider.value);
  const locked = run.phase !== "idle";
  el.languageList.replaceChildren();
  const caps = (p && p.capabilities) || {};
  // "Automatic": every language an available provider speaks (the hub routes each to one)
  const routed = [...providers.values()].filter((q) => q.status === "available");
  const langs = p ? (Array.isArray(caps.languages) ? caps.languages : [])
    : [...new Set(routed.flatMap((q) => (Array.isArray(q.capabilities?.languages) ? q.capabilities.languages : [])))]
      .filter((l) => l !== "auto");
  if (p || routed.length) for (const l of ["auto", ...langs]) el.languageList.append(new Option(l, l));
  el.providerInfo.textContent = p ? describeCapabilities(p)
    : routed.length ? "The hub picks the engine for the language; with none given, it listens for the language first." : "";
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
  const turn = turnOption();
  if (turn) start.turn = turn;
  return start;
}

/** `turn` for start: only in semantic mode (silence: left out, so the hub's config decides). Needs the VAD. */
function turnOption() {
  if (el.turnMode.value !== "semantic" || !el.vadEnabled.checked) return null;
  return { mode: "semantic", eagerness: el.turnEagerness.value || "auto" };
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
  setSpeaking(false, {});
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
  view.clearPartial();
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
      const turn = ev.config && ev.config.turn && typeof ev.config.turn === "object" ? ev.config.turn : null;
      transcript.beginSession(ev.session_id, { provider: ev.provider, language: ev.language, transport: transportLabel, turn });
      renderSessionInfo(ev.session_id);
      break;
    }
    case "speech.started":
      setSpeaking(true);
      break;
    case "speech.ended":
      setSpeaking(false, ev);
      break;
    case "transcript.partial":
      view.showPartial(ev);
      break;
    case "transcript.final":
      view.addFinal(ev);
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
      view.clearPartial();
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
  renderTurnControls();
  updateProviderInfo();
}

/** The eagerness select only in semantic mode; both disabled while a session runs or without the VAD. */
function renderTurnControls() {
  const off = run.phase !== "idle" || !el.vadEnabled.checked;
  el.turnMode.disabled = off;
  el.turnEagerness.disabled = off;
  el.turnEagernessField.hidden = el.turnMode.value !== "semantic";
}

function renderSessionInfo(sessionId) {
  const s = transcript.sessions.get(sessionId);
  if (!s) return;
  const parts = [`Session ${shortId(s.session_id)}`];
  if (s.provider) parts.push(s.provider);
  if (s.language) parts.push(s.language);
  if (s.transport) parts.push(s.transport);
  if (s.turn && s.turn.mode === "semantic") parts.push(`semantic turns${s.turn.eagerness ? ` (${s.turn.eagerness})` : ""}`);
  el.sessionInfo.textContent = parts.join(" · ");
  el.sessionInfo.title = s.session_id;
  el.sessionInfo.dataset.turnMode = s.turn && s.turn.mode ? s.turn.mode : "";
}

function shortId(id) {
  return id && id.length > 12 ? `${id.slice(0, 8)}…` : id;
}

// speech.ended `reason` (DESIGN §3.2) as shown after "Silence".
const END_REASONS = {
  silence: ["pause", "The utterance ended after the configured silence."],
  turn: ["end of turn", "The turn model judged that the speaker had finished."],
  max_silence: ["long pause", "The turn model was unsure; the utterance ended after the longest silence allowed."],
  max_length: ["cut: too long", "The utterance reached the longest length allowed and was cut."],
  flush: ["finalised", "The utterance was finalised on request (Finalize now or stop)."],
};

/**
 * Speech activity. `ended` (a speech.ended event) shows why the last utterance ended until speech starts again;
 * `{}` clears it; without it the last reason stays.
 */
function setSpeaking(on, ended) {
  el.speech.dataset.speaking = String(on);
  el.speechLabel.textContent = on ? "Speech" : "Silence";
  if (on) ended = {};
  if (!ended) return;
  const [text, why] = END_REASONS[ended.reason] || [ended.reason || "", ""];
  const p = typeof ended.turn_probability === "number" ? ` ${Math.round(ended.turn_probability * 100)}%` : "";
  el.speech.dataset.reason = ended.reason || "";
  el.speechReason.textContent = text ? `· ${text}${p}` : "";
  if (why) el.speech.title = p ? `${why} Probability that the speaker had finished:${p}.` : why;
  else el.speech.removeAttribute("title");
}

function setLevel(v, immediate = false) {
  // Fast attack, slow release.
  run.meter = immediate || v >= run.meter ? v : Math.max(v, run.meter - 0.04);
  el.level.value = run.meter;
  el.level.textContent = `${Math.round(run.meter * 100)}%`;
}

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
  renderTurnControls();
});
el.turnMode.addEventListener("change", renderTurnControls);
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
renderTurnControls();
view.updateEmpty();
loadProviders();
