#!/usr/bin/env bash
# Installs everything `make test` needs on a fresh machine: the package with its test extras (through
# scripts/install.sh, shared with `make run` and the Dockerfiles), and the
# Debian packages of every program the tests drive, listed once in scripts/system-programs.txt.
# The demo page's Socket.IO client is vendored (frontend/realtime-streaming/vendor/): no npm.
set -euo pipefail
extras="${1:-default,test}"
# Every provider's library is installed for the tests (issue 4); scripts/install.sh is the one install
# procedure (torch CPU build first, the package editable, silero-vad without its torch dependency).
bash scripts/install.sh .venv/bin/python "${extras},providers" editable

# Every program the tests, the bench and `make run` call, from the one list (scripts/system-programs.txt;
# tests/unit/test_system_programs.py checks it against the code). A program already on the machine is kept.
need_apt=()
while read -r program package _; do
  [[ -z "$program" || "$program" == \#* ]] && continue
  command -v "$program" >/dev/null 2>&1 || [ -x "/usr/sbin/$program" ] || need_apt+=("$package")
done < scripts/system-programs.txt
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
