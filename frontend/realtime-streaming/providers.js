// The provider picker: GET /v1/providers → <option>s (unavailable ones
// disabled, with the reason), and a one-line summary of capabilities.

/**
 * Fetch the provider list.
 * @returns {Promise<{list: Array<object>|null, code: string|null}>} list null when it could not be
 *   loaded; code "unauthorized" when the hub wants an API key
 */
export async function fetchProviders(hubBase, token) {
  const headers = {};
  if (token) headers.Authorization = `Bearer ${token}`;
  try {
    const res = await fetch(new URL("/v1/providers", hubBase), { headers });
    if (res.status === 401 || res.status === 403) return { list: null, code: "unauthorized" };
    if (!res.ok) return { list: null, code: "providers_unavailable" };
    const body = await res.json();
    const list = Array.isArray(body) ? body : body && (body.providers || body.data);
    return Array.isArray(list) ? { list, code: null } : { list: null, code: "providers_unavailable" };
  } catch {
    return { list: null, code: "providers_unavailable" };
  }
}

/**
 * Fill the <select>. First comes "Automatic" (value ""): the start names no
 * provider, so the hub routes the session by its language, or by the language
 * it hears when none is given (`providers.routes`, `providers.detect`); naming
 * the default provider would pin every language to it (tiny.en: Mandarin
 * refused, or heard as English). Selects `wanted` if available, else
 * "Automatic". With nothing usable, "Server default" lets the hub decide and
 * explain.
 * @returns {Map<string, object>} name → provider entry
 */
export function fillProviderSelect(select, list, wanted) {
  const byName = new Map();
  select.replaceChildren();
  let firstAvailable = null;
  let flaggedDefault = null;
  let wantedOk = null;
  for (const p of list || []) {
    if (!p || !p.name) continue;
    byName.set(p.name, p);
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
    select.append(opt);
    if (!available) continue;
    if (!firstAvailable) firstAvailable = p.name;
    if (p.default === true && !flaggedDefault) flaggedDefault = p.name;
    if (p.name === wanted) wantedOk = p.name;
  }
  if (firstAvailable) {
    const auto = new Option("Automatic (routed by language)", "");
    auto.dataset.status = "auto";
    select.prepend(auto);
    select.value = wantedOk || "";
  } else {
    select.prepend(new Option("Server default", ""));
    select.value = "";
  }
  return byName;
}

/** "streaming · interim results · languages: en, zh" */
export function describeCapabilities(p) {
  const caps = (p && p.capabilities) || {};
  const bits = [caps.streaming ? "streaming" : "batch (streamed by the hub)"];
  if (caps.interim) bits.push("interim results");
  if (caps.word_timestamps) bits.push("word timestamps");
  const langs = Array.isArray(caps.languages) ? caps.languages : [];
  if (langs.length) {
    bits.push(`languages: ${langs.length > 8 ? `${langs.slice(0, 8).join(", ")} +${langs.length - 8}` : langs.join(", ")}`);
  }
  return bits.join(" · ");
}
