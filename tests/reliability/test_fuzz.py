"""Bad input: fuzzers over the hot path's parsers, the ABI's marshalling and the software
HSM's HTTP API. Each runs for FUZZ_SECONDS (default 10, so CI stays near a minute in total);
set FUZZ_SECONDS=600 for a long run. Inputs that once crashed go into
tests/reliability/fuzz/codec_seeds/ and are replayed by every run."""

from __future__ import annotations

import base64
import http.client
import json
import os
import random
import shutil
import ssl
import subprocess
import sys
import sysconfig
import time
from collections import Counter

import pytest

from p11fast.hsm.testing import ADMIN_PASSPHRASE, ADMIN_USER, OPERATOR_USER
from tests.hsm_api import HsmApi
from tests.reliability.conftest import KEY_ID, PIN, cluster, report, run_host, write_config

SECONDS = int(os.environ.get("FUZZ_SECONDS", "10"))
HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(os.path.dirname(HERE))
FUZZ = os.path.join(HERE, "fuzz")


def codec_alone(directory) -> str:
    """A module `codec` of the codec's pieces alone, as p11fast/_abi.pyx and _abi.pxd include
    them (in their order): they use nothing of the transport's or the ABI's."""
    for ext in ("pyx", "pxd"):
        with open(os.path.join(ROOT, "p11fast", f"_abi.{ext}")) as root:
            lines = [line for line in root if line.startswith('include "codec/')]
        with open(os.path.join(directory, f"codec.{ext}"), "w") as out:
            out.writelines(lines)
    return os.path.join(directory, "codec.pyx")


def build_codec_fuzzer(directory) -> str:
    """The libFuzzer binary: Cython's C for the codec's pieces (the directives of setup.py)
    included by fuzz/fuzz_codec.c, with AddressSanitizer and UndefinedBehaviorSanitizer."""
    if shutil.which("clang") is None:
        pytest.fail("clang is missing: run scripts/setup-dev.sh")
    generated = os.path.join(directory, "codec.c")
    subprocess.run(
        [sys.executable, "-m", "cython", "-3", "-I", ROOT, "-I", os.path.join(ROOT, "p11fast"),
         "-o", generated, "-X", "boundscheck=False", "-X", "wraparound=False",
         "-X", "initializedcheck=False", "-X", "cdivision=True", codec_alone(directory)],
        check=True,
    )  # fmt: skip
    libdir = sysconfig.get_config_var("LIBDIR")
    exe = os.path.join(directory, "fuzz_codec")
    subprocess.run(
        ["clang", "-g", "-O1", "-fsanitize=fuzzer,address,undefined",
         "-fno-sanitize-recover=undefined", "-Wno-unused-function", "-I", directory,
         "-I", sysconfig.get_paths()["include"], os.path.join(FUZZ, "fuzz_codec.c"), "-o", exe,
         "-L", libdir, f"-lpython{sysconfig.get_config_var('LDVERSION')}", "-lcrypto",
         f"-Wl,-rpath,{libdir}"],
        check=True,
    )  # fmt: skip
    return exe


def test_codec_parsers_survive_libfuzzer_under_address_and_undefined_sanitizers(tmp_path):
    exe = build_codec_fuzzer(str(tmp_path))
    corpus = tmp_path / "corpus"
    shutil.copytree(os.path.join(FUZZ, "codec_seeds"), corpus)
    done = subprocess.run(
        [exe, f"-max_total_time={SECONDS}", "-print_final_stats=1",
         f"-artifact_prefix={tmp_path}/", str(corpus)],
        capture_output=True, text=True, timeout=SECONDS + 120,
    )  # fmt: skip
    crashes = [p.name for p in tmp_path.iterdir() if p.name.startswith(("crash-", "leak-"))]
    assert done.returncode == 0 and crashes == [], done.stderr[-4000:]
    runs = int(done.stderr.split("stat::number_of_executed_units:")[1].split()[0])
    assert runs > 1000 * SECONDS  # it really ran (tens of thousands per second here)


def test_random_templates_and_mechanism_parameters_get_only_standard_codes(
    module_path, host, key_state, tmp_path
):
    seed = int(os.environ.get("FUZZ_SEED", "0")) or random.randrange(1, 2**63)
    with cluster(key_state, tmp_path, 1) as hsms:
        config = write_config(tmp_path / "c.conf", [hsms.instances[0].url], hsms.fingerprint)
        done = run_host(
            host, config, "abifuzz", module_path, PIN, KEY_ID, str(SECONDS), str(seed),
            timeout=SECONDS + 60,
        )  # fmt: skip
    # A crash is a signal, not a report line; the seed reproduces the run.
    assert done.returncode == 0, f"FUZZ_SEED={seed}: {done.stderr[-3000:]}"
    result = report(done.stdout, "calls")
    assert result["calls"] > 100 * SECONDS, result
    assert result["bad"] == 0, f"FUZZ_SEED={seed}: {done.stderr[-3000:]}"


def mutate(rng: random.Random, body: bytes) -> bytes:
    data = bytearray(body)
    for _ in range(rng.randrange(1, 8)):
        choice = rng.randrange(4)
        if choice == 0 and data:
            data[rng.randrange(len(data))] = rng.randrange(256)
        elif choice == 1:
            data.insert(rng.randrange(len(data) + 1), rng.choice(b'{}[]",:\\0e-.tnfu '))
        elif choice == 2 and data:
            del data[rng.randrange(len(data))]
        else:
            at = rng.randrange(len(data) + 1)
            data[at:at] = rng.randbytes(rng.randrange(1, 64))
    return bytes(data)


def test_software_hsm_answers_random_bodies_and_headers_without_5xx_and_keeps_serving(
    key_state, tmp_path
):
    rng = random.Random(int(os.environ.get("FUZZ_SEED", "0")) or None)
    with cluster(key_state, tmp_path, 1) as hsms:
        api = hsms.api(0)
        api.generate("Generic", ["AES_Encryption_CBC", "AES_Decryption_CBC"], "aes", 128)
        api.generate("RSA", ["RSA_Decryption_PKCS1", "RSA_Signature_PKCS1"], "rsa", 2048)
        operator = "Basic " + base64.b64encode(f"{OPERATOR_USER}:{PIN}".encode()).decode()
        admin = "Basic " + base64.b64encode(f"{ADMIN_USER}:{ADMIN_PASSPHRASE}".encode()).decode()
        valid = {
            "/keys/ecp256/sign": (operator, {"mode": "ECDSA", "message": "A" * 44}),
            "/keys/rsa/decrypt": (operator, {"mode": "PKCS1", "encrypted": "AAAA"}),
            "/keys/aes/encrypt": (operator, {"mode": "AES_CBC", "message": "AAAA", "iv": "AAAA"}),
            "/keys/aes/decrypt": (operator, {"mode": "AES_CBC", "encrypted": "AAAA", "iv": "A"}),
            "/keys/generate": (admin, {"type": "EC_P256", "mechanisms": ["ECDSA_Signature"]}),
            "/keys": (admin, {"type": "EC_P256", "mechanisms": ["ECDSA_Signature"],
                              "private": {"primeP": "AAAA"}}),
        }  # fmt: skip
        types = ["application/json", "application/x-pem-file", "text/plain", "", "*/*",
                 "application/json; charset=utf-16", "multipart/form-data; boundary=x"]  # fmt: skip
        statuses: Counter[int] = Counter()
        server_errors = []
        context = ssl._create_unverified_context()
        conn = http.client.HTTPSConnection("127.0.0.1", hsms.instances[0].port, context=context)
        deadline = time.monotonic() + SECONDS
        while time.monotonic() < deadline:
            path, (auth, body) = rng.choice(list(valid.items()))
            raw = json.dumps(body).encode()
            kind = rng.randrange(3)
            data = rng.randbytes(rng.randrange(300)) if kind == 0 else mutate(rng, raw)
            headers = {"Content-Type": rng.choice(types), "Authorization": auth}
            if rng.randrange(6) == 0:  # garbage credentials of a user nobody logs in as
                junk = "".join(chr(rng.randrange(33, 127)) for _ in range(rng.randrange(40)))
                headers["Authorization"] = rng.choice(["Basic ", "Bearer ", ""]) + junk
            if rng.randrange(6) == 0:
                headers["X-" + str(rng.randrange(99))] = "".join(
                    chr(rng.randrange(32, 127)) for _ in range(rng.randrange(200))
                )
            try:
                conn.request("POST", "/api/v1" + path, data, headers)
                response = conn.getresponse()
                response.read()
            except (http.client.HTTPException, OSError):
                conn.close()
                conn = http.client.HTTPSConnection(
                    "127.0.0.1", hsms.instances[0].port, context=context
                )
                statuses[0] += 1
                continue
            statuses[response.status] += 1
            if response.status >= 500:
                server_errors.append((path, headers.get("Content-Type"), data[:200]))
        conn.close()
        # Still serving, and still right.
        assert api.expect(200, "GET", "/health/state")
        signer = HsmApi(hsms.instances[0].url, OPERATOR_USER, PIN)
        signature = signer.sign(KEY_ID, "ECDSA", b"\x01" * 32)
    assert server_errors == [], server_errors[:5]
    assert statuses[0] == 0, statuses  # the server never dropped a connection
    assert sum(statuses.values()) > 50 * SECONDS, statuses
    assert signature
