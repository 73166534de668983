#!/usr/bin/env bash
# Writes requirements.lock: the exact version of every package in .venv after `make test` bootstrapped it
# (scripts/bootstrap-test.sh: default + test + every provider extra), as a pip constraints file.
#   bash scripts/lock.sh            # regenerate after changing dependencies, then commit requirements.lock
#   PIP_CONSTRAINT=requirements.lock bash scripts/install.sh PYTHON EXTRAS   # install exactly these versions
# (the Dockerfiles do the latter). A local version suffix (torch's +cpu) is dropped: the pin is the release.
set -euo pipefail
cd "$(dirname "$0")/.."
py="${1:-.venv/bin/python}"
{
  echo "# Exact versions of the environment \`make test\` ran in (bash scripts/lock.sh regenerates this file)."
  echo "# $("$py" -c 'import platform; print("Python", platform.python_version(), platform.machine())')."
  echo "# Use as constraints: PIP_CONSTRAINT=requirements.lock bash scripts/install.sh PYTHON EXTRAS"
  "$py" -m pip freeze --exclude-editable --all 2>/dev/null | grep -v -E '^(asrhub|pip|setuptools|wheel)==' \
    | sed -E 's/^([A-Za-z0-9_.-]+==[^+]+)\+[A-Za-z0-9.]+$/\1/' | LC_ALL=C sort -f
} > requirements.lock
echo "requirements.lock: $(grep -c '==' requirements.lock) pinned packages"
