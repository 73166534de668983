#!/usr/bin/env bash
# Installs everything `make test` needs on a fresh machine: the package with its test extras (through
# scripts/install.sh, shared with `make run` and the Dockerfiles), and the
# Debian packages the tests drive (chromium for the browser tests, espeak-ng/sox for generated speech, redis-server and nginx
# for the cluster tests).
# The demo page's Socket.IO client is vendored (frontend/realtime-streaming/vendor/): no npm.
set -euo pipefail
extras="${1:-default,test}"
# Every provider's library is installed for the tests (issue 4); scripts/install.sh is the one install
# procedure (torch CPU build first, the package editable, silero-vad without its torch dependency).
bash scripts/install.sh .venv/bin/python "${extras},providers" editable

need_apt=()
command -v chromium >/dev/null 2>&1 || need_apt+=(chromium)
command -v espeak-ng >/dev/null 2>&1 || need_apt+=(espeak-ng)
command -v redis-server >/dev/null 2>&1 || need_apt+=(redis-server)   # the cluster tests (DESIGN §8)
command -v nginx >/dev/null 2>&1 || [ -x /usr/sbin/nginx ] || need_apt+=(nginx)  # deploy/nginx.conf on loopback
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
