// Error codes → sentences a person can act on.
// Server codes are the stable snake_case codes of DESIGN §3.2; the rest are
// produced by this page (connection handling, microphone, file decoding).

const MESSAGES = {
  // --- hub error codes (DESIGN §3.2) ---
  invalid_command: "The server did not accept this session's settings.",
  unsupported_encoding: "The server cannot handle this audio format.",
  invalid_audio: "The server could not make sense of the audio it received.",
  unknown_provider: "The selected speech engine does not exist on this server. Pick another one.",
  provider_unavailable: "The selected speech engine is not available right now. Pick another one or try again later.",
  provider_error: "The speech engine failed while transcribing.",
  too_many_sessions: "The server is busy — too many people are transcribing right now. Try again in a moment.",
  payload_too_large: "A piece of audio was too large for the server to accept.",
  rate_limited: "Too many requests — the server is slowing this page down. Wait a moment and try again.",
  unauthorized: "This server needs an API key (or the one given was refused). Enter it under Options.",
  session_not_found: "The session no longer exists on the server (it may have expired).",
  internal: "The server ran into an internal problem.",

  // --- connection (this page) ---
  connection_lost: "Connection lost — reconnecting…",
  server_unreachable: "Cannot reach the server. Check that the hub is running and try again.",
  reconnect_failed: "Connection lost and could not be restored — the server seems to be gone.",
  resume_failed: "The connection came back, but the session could not be resumed.",
  closed_by_server: "The server closed the connection.",
  timeout: "The server did not answer in time.",
  sio_unavailable: "The Socket.IO client library is missing on this server (frontend/realtime-streaming/vendor/ is incomplete).",
  bad_response: "The server sent an answer this page does not understand.",

  // --- microphone & files (this page) ---
  mic_denied: "Microphone access was blocked. Allow it in the browser's site settings and try again.",
  mic_not_found: "No microphone was found. Plug one in and try again.",
  mic_busy: "The microphone is in use by another application or cannot be opened.",
  mic_unsupported: "This browser cannot capture audio from the microphone.",
  mic_ended: "The microphone stopped (it was unplugged or disabled).",
  insecure_context: "The microphone only works on HTTPS pages or on localhost.",
  decode_failed: "The browser could not decode this file. Try a WAV, MP3, FLAC, OGG or WebM file.",
  decode_unsupported: "This browser cannot decode audio files.",
  file_unreadable: "The file could not be read.",
  providers_unavailable: "Could not load the list of speech engines; the server default will be used.",
};

const ENDED_REASONS = {
  stop: "Session finished.",
  idle: "Session ended because no audio arrived for a while.",
  error: "Session ended because of an error.",
  client_gone: "Session ended: the server lost track of this page.",
  shutdown: "Session ended: the server is shutting down.",
};

// Hub codes whose message names what to change (a language the engine does not speak, a bad file): shown.
const WITH_REASON = new Set(["invalid_command", "invalid_audio", "unsupported_encoding", "unknown_provider",
  "provider_unavailable", "payload_too_large"]);

/** A human sentence for an error code (with the server's reason where it says what to change); falls back to
 * the server's own message. */
export function describeError(code, serverMessage) {
  if (code && MESSAGES[code] && serverMessage && WITH_REASON.has(code)) return `${MESSAGES[code]} (${serverMessage})`;
  if (code && MESSAGES[code]) return MESSAGES[code];
  if (serverMessage) return String(serverMessage);
  return "Something went wrong.";
}

/** A human sentence for a session.ended reason. */
export function describeEnded(reason) {
  return ENDED_REASONS[reason] || `Session ended (${reason || "unknown reason"}).`;
}

