#!/usr/bin/env bash
# Installs everything `make test` needs on a fresh machine: the package with its test extras, and the
# Debian packages the tests drive (chromium for the browser tests, espeak-ng/sox for generated speech).
# The demo page's Socket.IO client is vendored (frontend/realtime-streaming/vendor/): no npm.
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

need_apt=()
command -v chromium >/dev/null 2>&1 || need_apt+=(chromium)
command -v espeak-ng >/dev/null 2>&1 || need_apt+=(espeak-ng)
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
