// Renders the transcript: the finals list (#finals), the live partial
// (#partial with #partial-stable / #partial-unstable), the empty hint, and
// the export / clear buttons.

import { clockTime, splitPartial } from "./transcript.js";

export class TranscriptView {
  /**
   * @param {import("./transcript.js").Transcript} transcript
   * @param {Record<string, HTMLElement>} el  elements from app.js
   * @param {{exportMeta?: () => object, onClear?: () => void}} [opts]
   */
  constructor(transcript, el, opts = {}) {
    this.transcript = transcript;
    this.el = el;
    this.opts = opts;
    this.partialKey = null;
    this.stickToBottom = true;

    el.scroll.addEventListener("scroll", () => {
      const s = el.scroll;
      this.stickToBottom = s.scrollHeight - s.scrollTop - s.clientHeight < 48;
    });
    el.exportTxt.addEventListener("click", () =>
      download(exportName("txt"), "text/plain;charset=utf-8", transcript.toText()),
    );
    el.exportSrt.addEventListener("click", () =>
      download(exportName("srt"), "application/x-subrip;charset=utf-8", transcript.toSrt()),
    );
    el.exportJson.addEventListener("click", () =>
      download(exportName("json"), "application/json", transcript.toJson(opts.exportMeta ? opts.exportMeta() : {})),
    );
    el.clear.addEventListener("click", () => {
      transcript.clear();
      el.finals.replaceChildren();
      if (opts.onClear) opts.onClear();
      this.updateEmpty();
    });
    this.updateEmpty();
  }

  showPartial(ev) {
    if (this.transcript.hasFinal(ev.session_id, ev.utterance_id)) return; // late partial of a finished utterance
    const { el } = this;
    const [stable, unstable] = splitPartial(ev.text, ev.stable_text);
    this.partialKey = partialKey(ev);
    el.partial.dataset.utteranceId = ev.utterance_id != null ? String(ev.utterance_id) : "";
    el.partialStable.textContent = stable;
    el.partialUnstable.textContent = unstable;
    el.partial.classList.toggle("active", !!(stable || unstable));
    this.updateEmpty();
    this.autoScroll();
  }

  clearPartial() {
    const { el } = this;
    this.partialKey = null;
    el.partial.dataset.utteranceId = "";
    el.partialStable.textContent = "";
    el.partialUnstable.textContent = "";
    el.partial.classList.remove("active");
    this.updateEmpty();
  }

  addFinal(ev) {
    const { entry, replaced } = this.transcript.addFinal(ev);
    if (this.partialKey === partialKey(ev)) this.clearPartial();
    const li = document.createElement("li");
    li.className = entry.text ? "final" : "final empty";
    li.dataset.utteranceId = entry.utterance_id;
    if (entry.session_id) li.dataset.sessionId = entry.session_id;
    li.dataset.startMs = String(entry.start_ms);
    li.dataset.endMs = String(entry.end_ms);
    if (typeof entry.end_of_turn === "boolean") li.dataset.endOfTurn = String(entry.end_of_turn);

    const meta = document.createElement("div");
    meta.className = "final-meta";
    meta.append(span("final-time", `${clockTime(entry.start_ms)}–${clockTime(entry.end_ms)}`, `${entry.start_ms}–${entry.end_ms} ms`));
    if (entry.provider) meta.append(span("final-provider", entry.provider));
    if (entry.latency_ms != null) {
      meta.append(span("final-latency", `${Math.round(entry.latency_ms)} ms`, "Latency: end of speech → final transcript"));
    }
    const text = document.createElement("p");
    text.className = "final-text";
    text.textContent = entry.text;
    li.append(meta, text);
    if (entry.end_of_turn) {
      li.append(span("final-eot", "end of turn", "The speaker finished their turn here (semantic turn mode)"));
    }

    const selector = `.final[data-utterance-id="${cssEscape(entry.utterance_id)}"][data-session-id="${cssEscape(entry.session_id || "")}"]`;
    const old = replaced ? this.el.finals.querySelector(selector) : null;
    if (old) old.replaceWith(li);
    else this.el.finals.append(li);
    this.updateEmpty();
    this.autoScroll();
  }

  updateEmpty() {
    const { el } = this;
    const empty = this.transcript.isEmpty && !el.partial.classList.contains("active");
    el.emptyHint.hidden = !empty;
    for (const b of [el.exportTxt, el.exportSrt, el.exportJson, el.clear]) b.disabled = this.transcript.isEmpty;
  }

  autoScroll() {
    if (this.stickToBottom) this.el.scroll.scrollTop = this.el.scroll.scrollHeight;
  }
}

function partialKey(ev) {
  return `${ev.session_id || ""}\u0000${ev.utterance_id}`;
}

function span(className, text, title) {
  const s = document.createElement("span");
  s.className = className;
  s.textContent = text;
  if (title) s.title = title;
  return s;
}

function cssEscape(s) {
  return window.CSS && CSS.escape ? CSS.escape(s) : String(s).replace(/["\\]/g, "\\$&");
}

/** Save `content` as a file via a temporary object URL. */
export function download(filename, mime, content) {
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
