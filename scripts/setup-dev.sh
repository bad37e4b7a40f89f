#!/usr/bin/env bash
# Installs what p11fast needs on a fresh Debian machine (system packages, a virtual
# environment with the Python dependencies), builds the module in place and installs the
# package into the environment (editable): `. .venv/bin/activate` puts `p11fast` on the PATH.
# Idempotent: a second run only rebuilds what changed.
set -euo pipefail
cd "$(dirname "$0")/.."

SUDO=""
[ "$(id -u)" = 0 ] || SUDO="sudo"
PACKAGES=(
  build-essential pkg-config libcurl4-openssl-dev libssl-dev libyaml-dev libp11-kit-dev libnss3-dev
  opensc opensc-pkcs11 openssl gnutls-bin p11-kit libengine-pkcs11-openssl softhsm2
  nginx-light wrk hyperfine curl
  clang libclang-rt-14-dev openjdk-17-jdk-headless
)
missing=()
for p in "${PACKAGES[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
if [ ${#missing[@]} -gt 0 ]; then
  $SUDO apt-get update -qq
  $SUDO env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
fi

PYTHON="${PYTHON:-python3}"
if [ ! -x .venv/bin/python ]; then
  "$PYTHON" -m venv .venv
fi
.venv/bin/python -m pip install -q --upgrade pip >/dev/null
.venv/bin/python -m pip install -q -r requirements-dev.txt
.venv/bin/python setup.py -q build_ext --inplace
# The `p11fast` command in .venv/bin, and the package importable from any directory: an
# editable install maps it to this checkout, so the in-place builds above need no reinstall.
# setuptools' notes about editable installs are noise here: shown only if the install fails.
if [ ! -x .venv/bin/p11fast ]; then
  out="$(.venv/bin/python -m pip install -q --no-build-isolation --no-deps -e . 2>&1)" ||
    { printf '%s\n' "$out" >&2; exit 1; }
fi
