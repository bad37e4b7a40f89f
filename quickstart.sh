#!/usr/bin/env bash
# The main job end to end on one machine: start the software HSM, create a key on it,
# sign through the PKCS#11 module with pkcs11-tool, verify the signature with openssl.
set -euo pipefail
cd "$(dirname "$0")"
bash scripts/setup-dev.sh

PY=.venv/bin/python
STATE="$(mktemp -d /tmp/p11fast-quickstart.XXXXXX)"
PORT="${PORT:-$($PY -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')}"

$PY -m p11fast hsm init --state "$STATE" --port "$PORT" >/dev/null
$PY -m p11fast hsm serve --state "$STATE" --port "$PORT" >"$STATE/hsm.log" 2>&1 &
HSM_PID=$!
trap 'kill $HSM_PID 2>/dev/null || true' EXIT
for _ in $(seq 100); do grep -qs "listening on" "$STATE/hsm.log" && break; sleep 0.1; done

API="https://127.0.0.1:$PORT/api/v1"
curl -sSfk -u admin:adminadmin1 -H 'Content-Type: application/json' -X POST "$API/keys/generate" \
  -d '{"type": "EC_P256", "mechanisms": ["ECDSA_Signature"], "id": "quickstart"}' >/dev/null
curl -sSfk -u operator:operatoroperator "$API/keys/quickstart/public.pem" -o "$STATE/public.pem"

export P11FAST_CONFIG_FILE="$STATE/p11fast.conf"
MODULE="$($PY -m p11fast module-path)"
echo "signed by the software HSM through p11fast" >"$STATE/data"
pkcs11-tool --module "$MODULE" --sign --id "$(printf quickstart | od -An -tx1 | tr -d ' \n')" \
  -m ECDSA-SHA256 --signature-format openssl -i "$STATE/data" -o "$STATE/data.sig"
openssl dgst -sha256 -verify "$STATE/public.pem" -signature "$STATE/data.sig" "$STATE/data"
echo "state, config and files: $STATE"
