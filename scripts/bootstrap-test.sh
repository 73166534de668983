#!/usr/bin/env bash
# Installs everything `make test` needs on a fresh machine: the package with its test extras (through
# scripts/install.sh, shared with `make run` and the Dockerfiles), and the
# Debian packages of every program the tests drive, listed once in PROGRAMS below.
# The demo page's Socket.IO client is vendored (frontend/realtime-streaming/vendor/): no npm.
set -euo pipefail
extras="${1:-default,test}"
# Every provider's library is installed for the tests (issue 4); scripts/install.sh is the one install
# procedure (torch CPU build first, the package editable, silero-vad without its torch dependency).
bash scripts/install.sh .venv/bin/python "${extras},providers" editable

# Every program outside the venv that the tests, the bench, the scripts or `make run` run, with its Debian
# package: the one list (tests/unit/test_system_programs.py reads the code and fails on a program missing here).
PROGRAMS=(
  chromium:chromium              # tests/e2e (the demo page), tests/contract/test_protocol_examples.py
  espeak-ng:espeak-ng            # tests/providers/test_vosk.py (Korean speech)
  sox:sox                        # tests/telephony.py (8 kHz resampling independent of the hub's),
                                 # bench/zh_classes.py (tests/test_mandarin_speech.py's songs)
  redis-server:redis-server      # tests/cluster, bench/bench_cluster.py (DESIGN §8)
  redis-sentinel:redis-sentinel  # Redis Sentinel (DESIGN §8)
  nginx:nginx                    # tests/cluster/test_nginx.py (deploy/nginx.conf on loopback)
  nproc:coreutils                # bench/common.py (the machine line of every result)
  git:git                        # bench/bench_concurrency.py --ab (a revision's src/ for paired runs)
  taskset:util-linux             # bench/bench_cluster.py (each hub pinned to its own core)
)
need_apt=()  # a program already on the machine is kept
for entry in "${PROGRAMS[@]}"; do
  program="${entry%%:*}" package="${entry#*:}"
  command -v "$program" >/dev/null 2>&1 || [ -x "/usr/sbin/$program" ] || need_apt+=("$package")
done
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
