#!/usr/bin/env bash
# On-demand AddressSanitizer run (about 3 minutes, not part of pytest): builds a copy of the
# module with -fsanitize=address, then drives it from the C host against a software HSM —
# 64 threads of mixed calls, random marshalling, 20 forks each way. Any ASan report fails.
#
#   tests/reliability/asan.sh [SECONDS]      (default 10 per scenario)
set -euo pipefail
ROOT="$(cd "$(dirname "$0")/../.." && pwd)"
PY="$ROOT/.venv/bin/python"
SECONDS_EACH="${1:-10}"
WORK="$(mktemp -d)"
trap 'kill "$HSM_PID" 2>/dev/null || true; rm -rf "$WORK"' EXIT

echo "building an ASan copy in $WORK"
(cd "$ROOT" && git ls-files | tar cf - -T -) | tar xf - -C "$WORK"
(cd "$WORK" && CFLAGS="-fsanitize=address -fno-omit-frame-pointer -g" LDFLAGS="-fsanitize=address" \
  "$PY" setup.py -q build_ext --inplace >/dev/null 2>&1)
cc -g -O1 -I "$ROOT/include" "$ROOT/tests/reliability/p11host.c" -o "$WORK/p11host" -ldl -lpthread

PORT="$("$PY" -c 'from p11fast.hsm.testing import free_port; print(free_port())')"
"$PY" -m p11fast hsm init --state "$WORK/hsm" --port "$PORT" >/dev/null
"$PY" -m p11fast hsm serve --state "$WORK/hsm" --port "$PORT" >"$WORK/hsm.log" 2>&1 &
HSM_PID=$!
for _ in $(seq 100); do grep -q "listening on" "$WORK/hsm.log" && break; sleep 0.1; done
"$PY" - "$WORK/hsm" <<'PY'
import sys
from p11fast.hsm.testing import ADMIN_PASSPHRASE, ADMIN_USER
from tests.hsm_api import HsmApi
import yaml
cfg = yaml.safe_load(open(f"{sys.argv[1]}/p11fast.conf"))
api = HsmApi(cfg["slots"][0]["instances"][0]["url"], ADMIN_USER, ADMIN_PASSPHRASE)
api.generate("EC_P256", ["ECDSA_Signature"], "ecp256")
PY

export P11FAST_CONFIG_FILE="$WORK/hsm/p11fast.conf"
export LD_PRELOAD="$(cc -print-file-name=libasan.so)"
# CPython is never finalised and keeps its memory on purpose: leak reports would be noise.
export ASAN_OPTIONS="detect_leaks=0:abort_on_error=1"
MODULE="$WORK/p11fast/libp11fast.so"
PIN=operatoroperator
run() { echo "== $*"; "$WORK/p11host" "$@" 2> >(grep -v " p11fast\[" >&2) | tee "$WORK/out"; }
run mixed "$MODULE" "$PIN" ecp256 64 "$SECONDS_EACH"
grep -q "failed=0" "$WORK/out"
run abifuzz "$MODULE" "$PIN" ecp256 "$SECONDS_EACH" 0
grep -q "bad=0" "$WORK/out"
run fork "$MODULE" "$PIN" ecp256 20 reinit
grep -q "children_failed=0" "$WORK/out"
run fork "$MODULE" "$PIN" ecp256 20 noreinit
grep -q "children_failed=0" "$WORK/out"
echo "ASan: no reports"
