#!/usr/bin/env bash
# The one command for every benchmark: installs the working tree into benchmarks/out/venv the
# way users get it (a built wheel), then runs benchmarks/run_all.py with that venv's Python.
# Arguments go to run_all.py (--duration, --warmup, --threads, --only, --module; see --help).
#
# Why a venv and not the in-place build: the loader finds its Python from its own path, and a
# source tree directly under / (like /work/<tree>) makes it take the system Python instead of
# the one that built the module. The installed wheel is also what applications load.
set -euo pipefail
cd "$(dirname "$0")/.."
VENV=benchmarks/out/venv
if [ ! -x "$VENV/bin/python" ]; then
  python3 -m venv "$VENV"
  "$VENV/bin/pip" install -q .
else
  "$VENV/bin/pip" install -q --no-deps --force-reinstall .
fi
exec "$VENV/bin/python" benchmarks/run_all.py "$@"
