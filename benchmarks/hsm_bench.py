"""Sign throughput of the software HSM, measured with wrk over HTTPS keep-alive.

    python benchmarks/hsm_bench.py [--duration 10] [--connections 1,8]

Starts a fresh software HSM (`p11fast.hsm.testing.running_hsm`), creates an ECDSA P-256 and
an RSA-2048 key, then runs wrk (POST /keys/{id}/sign with Basic auth, a Lua script) for each
key and connection count. Prints the machine, every command line and wrk's raw output.
"""

from __future__ import annotations

import argparse
import base64
import hashlib
import os
import platform
import re
import shutil
import subprocess
import sys
import tempfile

import requests
import urllib3

from p11fast.hsm.testing import ADMIN_PASSPHRASE, OPERATOR_PASSPHRASE, running_hsm

DIGEST_INFO_SHA256 = bytes.fromhex("3031300d060960864801650304020105000420")
KEYS = {
    "ECDSA P-256": ({"type": "EC_P256", "mechanisms": ["ECDSA_Signature"]}, "ECDSA", b""),
    "RSA-2048 PKCS1": (
        {"type": "RSA", "length": 2048, "mechanisms": ["RSA_Signature_PKCS1"]},
        "PKCS1",
        DIGEST_INFO_SHA256,
    ),
}
LUA = """wrk.method = "POST"
wrk.body = '{body}'
wrk.headers["Content-Type"] = "application/json"
wrk.headers["Authorization"] = "Basic {auth}"
"""


def machine_info() -> str:
    cpu = "unknown"
    if os.path.exists("/proc/cpuinfo"):
        models = re.findall(r"model name\s*:\s*(.*)", open("/proc/cpuinfo").read())
        cpu = models[0] if models else cpu
    wrk = subprocess.run(["wrk", "--version"], capture_output=True, text=True)
    return "\n".join(
        [
            f"machine: {platform.platform()}",
            f"cpu: {cpu} x {os.cpu_count()}",
            f"python: {sys.version.split()[0]}",
            f"wrk: {(wrk.stdout or wrk.stderr).splitlines()[0]}",
        ]
    )


def create_key(url: str, spec: dict) -> str:
    response = requests.post(
        f"{url}/keys/generate", json=spec, auth=("admin", ADMIN_PASSPHRASE), verify=False
    )
    response.raise_for_status()
    return response.json()["id"]


def run_wrk(url: str, script: str, connections: int, duration: int) -> tuple[str, float]:
    threads = min(connections, os.cpu_count() or 1)
    command = ["wrk", f"-t{threads}", f"-c{connections}", f"-d{duration}s", "-s", script, url]
    print("$ " + " ".join(command), flush=True)
    output = subprocess.run(command, capture_output=True, text=True, check=True).stdout
    print(output, flush=True)
    if "Non-2xx" in output:
        raise SystemExit("wrk saw error responses: the numbers above are not signatures")
    return output, float(re.search(r"Requests/sec:\s*([\d.]+)", output).group(1))


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--duration", type=int, default=10, help="seconds per wrk run")
    parser.add_argument("--connections", default="1,8", help="comma-separated counts")
    args = parser.parse_args()
    if shutil.which("wrk") is None:
        raise SystemExit("wrk is not installed")
    urllib3.disable_warnings(urllib3.exceptions.InsecureRequestWarning)
    print(machine_info())
    print("command: " + " ".join([sys.executable, *sys.argv]), flush=True)
    auth = base64.b64encode(f"operator:{OPERATOR_PASSPHRASE}".encode()).decode()
    results = []
    with tempfile.TemporaryDirectory() as state, running_hsm(state) as hsm:
        for name, (spec, mode, prefix) in KEYS.items():
            key_id = create_key(hsm.url, spec)
            message = base64.b64encode(prefix + hashlib.sha256(b"bench").digest()).decode()
            script = os.path.join(state, f"{key_id}.lua")
            with open(script, "w") as f:
                f.write(LUA.format(body=f'{{"mode":"{mode}","message":"{message}"}}', auth=auth))
            for connections in (int(c) for c in args.connections.split(",")):
                url = f"{hsm.url}/keys/{key_id}/sign"
                _, rate = run_wrk(url, script, connections, args.duration)
                results.append((name, connections, rate))
    print("summary (sign requests/s, HTTPS keep-alive):")
    for name, connections, rate in results:
        print(f"  {name:16} {connections:3} connection(s): {rate:10.0f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
