#!/usr/bin/env bash
# The one command for every benchmark: installs the working tree into benchmarks/out/venv the
# way users get it (a built wheel), then runs benchmarks/run_all.py with that venv's Python.
# Arguments go to run_all.py (--duration, --warmup, --threads, --only, --module; see --help),
# except --release-wheel (below).
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
# --release-wheel: also time pkcs11-tool with the module as release wheels ship it (libcurl and
# OpenSSL static and hidden, scripts/build-static-deps.sh), installed into its own venv.
ARGS=()
for arg in "$@"; do
  if [ "$arg" = "--release-wheel" ]; then
    DEPS=build/static-deps
    RVENV=benchmarks/out/venv-release
    bash scripts/build-static-deps.sh "$DEPS"
    rm -rf benchmarks/out/wheel
    P11FAST_STATIC_DEPS="$PWD/$DEPS" "$VENV/bin/pip" wheel -q --no-deps -w benchmarks/out/wheel .
    [ -x "$RVENV/bin/python" ] || python3 -m venv "$RVENV"
    "$RVENV/bin/pip" install -q --no-deps --force-reinstall benchmarks/out/wheel/p11fast-*.whl
    ARGS+=(--release-module "$("$RVENV/bin/p11fast" module-path)")
  else
    ARGS+=("$arg")
  fi
done
exec "$VENV/bin/python" benchmarks/run_all.py "${ARGS[@]}"
