#!/usr/bin/env bash
# Installs everything `make test` needs on a fresh machine: the package with its test extras, and the
# Debian packages the tests drive (chromium for the browser tests, espeak-ng/sox for generated speech,
# npm for the demo page's Socket.IO client; the Makefile runs `npm ci`).
set -euo pipefail
extras="${1:-default,test}"
VENV=.venv
# Every provider's library is installed for the tests (issue 4). torch FIRST, pinned to the local CPU
# build: openai-whisper depends on torch, and left to itself pip would fetch a multi-GB CUDA build.
"$VENV/bin/pip" install -q "torch==2.13.0"
"$VENV/bin/pip" install -q -e ".[${extras},providers]"
# Silero VAD: the ONNX model inside the silero-vad wheel, run on onnxruntime (the `silero` extra, pulled in
# by `test`). silero-vad declares torch as a dependency: --no-deps keeps pip from resolving it.
"$VENV/bin/pip" install -q onnxruntime
"$VENV/bin/pip" install -q --no-deps silero-vad==6.2.3
# pipecat's OpenAI STT service (tests/integrations): pipecat-ai pins protobuf<7 and soxr~=1.0, but the hub's
# generated gRPC code needs protobuf 7. --no-deps, then only what its OpenAI STT imports (none pulls torch).
"$VENV/bin/pip" install -q --no-deps pipecat-ai==1.14.0
"$VENV/bin/pip" install -q loguru docstring_parser "wait_for2<1" "loudness<1" sentencex==1.0.32 "Markdown<4" \
  "resampy~=0.4.3" num2words

need_apt=()
command -v chromium >/dev/null 2>&1 || need_apt+=(chromium)
command -v espeak-ng >/dev/null 2>&1 || need_apt+=(espeak-ng)
command -v npm >/dev/null 2>&1 || need_apt+=(npm)  # the Socket.IO browser client for the demo page
if [ ${#need_apt[@]} -gt 0 ]; then
  if [ "$(id -u)" = "0" ]; then
    export DEBIAN_FRONTEND=noninteractive
    apt-get update -q >/dev/null
    apt-get install -y -q --no-install-recommends "${need_apt[@]}" >/dev/null
  else
    echo "bootstrap-test: missing ${need_apt[*]}; run as root or install them" >&2
    exit 1
  fi
fi
# The demo page's Socket.IO client (the Makefile's npm target does the same; here for direct callers).
[ -d frontend/realtime-streaming/node_modules/socket.io-client/dist ] ||
  (cd frontend/realtime-streaming && npm ci --no-audit --no-fund --loglevel=error)
