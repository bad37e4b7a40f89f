"""Release-wheel check, run by cibuildwheel's test-command and the wheels workflow's host job
with the Python the wheel is installed in (never the source tree's package):

    python tests/packaging/smoke.py [--system-tls]

Starts the wheel's software HSM, makes an EC key, signs through the installed module from this
Python process (python-pkcs11) and, when this Python has a shared libpython (manylinux images'
Pythons do not), from a C host with an empty environment; each signature is verified with
`cryptography`. --system-tls adds a C host linked with the system's libcurl and OpenSSL
(their development files needed) and pkcs11-tool. Prints one line per check; exits non-zero on
the first failure.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import sysconfig
import tempfile

import pkcs11
import pycurl
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.hazmat.primitives.asymmetric.utils import encode_dss_signature

import p11fast
from p11fast.hsm.testing import (
    ADMIN_PASSPHRASE,
    ADMIN_USER,
    OPERATOR_PASSPHRASE,
    running_hsm,
)

HERE = os.path.dirname(os.path.abspath(__file__))
INCLUDE = os.path.join(HERE, "..", "..", "include")
LABEL = "smoke"
MESSAGE = b"p11fast release wheel"


def admin(url: str, method: str, path: str, body: dict | None = None) -> bytes:
    out = bytearray()
    c = pycurl.Curl()
    c.setopt(pycurl.URL, url + path)
    c.setopt(pycurl.USERPWD, f"{ADMIN_USER}:{ADMIN_PASSPHRASE}")
    c.setopt(pycurl.SSL_VERIFYPEER, 0)  # the HSM's fresh self-signed certificate
    c.setopt(pycurl.SSL_VERIFYHOST, 0)
    c.setopt(pycurl.CUSTOMREQUEST, method)
    if body is not None:
        c.setopt(pycurl.HTTPHEADER, ["Content-Type: application/json"])
        c.setopt(pycurl.POSTFIELDS, json.dumps(body))
    c.setopt(pycurl.WRITEFUNCTION, out.extend)
    c.perform()
    status = c.getinfo(pycurl.RESPONSE_CODE)
    c.close()
    if status >= 300:
        sys.exit(f"FAIL: {method} {path}: {status} {bytes(out)[:200]!r}")
    return bytes(out)


def verify(public_key, raw: bytes, what: str) -> None:
    half = len(raw) // 2
    der = encode_dss_signature(int.from_bytes(raw[:half], "big"), int.from_bytes(raw[half:], "big"))
    public_key.verify(der, MESSAGE, ec.ECDSA(hashes.SHA256()))
    print(f"ok: {what}")


def sign_in_process(config: str) -> bytes:
    os.environ["P11FAST_CONFIG_FILE"] = config
    lib = pkcs11.lib(p11fast.module_path())
    token = lib.get_slots(token_present=True)[0].get_token()
    with token.open(user_pin=OPERATOR_PASSPHRASE) as session:
        key = session.get_key(pkcs11.ObjectClass.PRIVATE_KEY, label=LABEL)
        return key.sign(MESSAGE, mechanism=pkcs11.Mechanism.ECDSA_SHA256)


def sign_from_c_host(config: str, work: str, system_tls: bool = False) -> bytes:
    exe = os.path.join(work, "tls_host" if system_tls else "sign_host")
    defines, libs = (["-DSYSTEM_TLS"], ["-lcurl", "-lssl", "-lcrypto"]) if system_tls else ([], [])
    subprocess.run(
        ["cc", "-O1", "-I", INCLUDE, *defines, os.path.join(HERE, "sign_host.c"), "-o", exe]
        + [*libs, "-ldl"],
        check=True,
    )
    done = subprocess.run(
        [exe, p11fast.module_path(), config, OPERATOR_PASSPHRASE, LABEL, MESSAGE.decode()],
        env={},
        capture_output=True,
        text=True,
        timeout=120,
    )
    if done.returncode != 0:
        sys.exit(f"FAIL: C host\n{done.stdout}{done.stderr}")
    sig = next(line for line in done.stdout.splitlines() if line.startswith("sig "))
    return bytes.fromhex(sig[4:])


def sign_with_pkcs11_tool(config: str, work: str) -> bytes:
    data, sig = os.path.join(work, "msg"), os.path.join(work, "sig")
    with open(data, "wb") as f:
        f.write(MESSAGE)
    done = subprocess.run(
        ["pkcs11-tool", "--module", p11fast.module_path(), "--login", "--pin", OPERATOR_PASSPHRASE]
        + ["--sign", "--mechanism", "ECDSA-SHA256", "--label", LABEL]
        + ["--input-file", data, "--output-file", sig],
        env={"P11FAST_CONFIG_FILE": config},
        capture_output=True,
        text=True,
        timeout=120,
    )
    if done.returncode != 0:
        sys.exit(f"FAIL: pkcs11-tool\n{done.stdout}{done.stderr}")
    with open(sig, "rb") as f:
        return f.read()


def main() -> None:
    system_tls = sys.argv[1:] == ["--system-tls"]
    with tempfile.TemporaryDirectory() as work, running_hsm(os.path.join(work, "hsm")) as hsm:
        admin(
            hsm.url,
            "POST",
            "/keys/generate",
            {"type": "EC_P256", "id": LABEL, "mechanisms": ["ECDSA_Signature"]},
        )
        public_key = serialization.load_pem_public_key(
            admin(hsm.url, "GET", f"/keys/{LABEL}/public.pem")
        )
        print(f"module: {p11fast.module_path()}")
        shared = sysconfig.get_config_var("Py_ENABLE_SHARED")
        # The C host first: it must start the wheel's Python itself, in a fresh process.
        if shared:
            verify(public_key, sign_from_c_host(hsm.config_path, work), "C host, empty environment")
        else:
            print("skip: C host (this Python has no shared libpython to embed)")
        if system_tls:
            raw = sign_from_c_host(hsm.config_path, work, system_tls=True)
            verify(public_key, raw, "C host with the system libcurl and OpenSSL loaded")
            verify(public_key, sign_with_pkcs11_tool(hsm.config_path, work), "pkcs11-tool")
        verify(public_key, sign_in_process(hsm.config_path), "Python host (python-pkcs11)")


if __name__ == "__main__":
    main()
