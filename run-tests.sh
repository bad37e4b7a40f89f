#!/usr/bin/env bash
# The test command: installs what is needed, builds, and runs the whole suite.
set -euo pipefail
cd "$(dirname "$0")"
bash scripts/setup-dev.sh
.venv/bin/python -m ruff check p11fast tests benchmarks
exec .venv/bin/python -m pytest -q "$@"
