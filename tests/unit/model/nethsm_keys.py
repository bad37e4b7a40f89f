"""Canned NetHSM answers for the object model's tests: key JSON as GET /keys/{id} returns it
(the PublicKey schema of the API spec), certificates, and a fake transport that answers like a
NetHSM."""

import base64
import datetime
import json
import re
import sys

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.x509.oid import NameOID

from p11fast import attrs as A

SPKI = (serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo)
X962 = (serialization.Encoding.X962, serialization.PublicFormat.UncompressedPoint)
U = A.ulong


def b64(b: bytes) -> str:
    return base64.b64encode(b).decode()


def rsa_json(key, mechanisms=("RSA_Signature_PKCS1",), label=None, pad=False):
    n = key.public_key().public_numbers().n.to_bytes(256, "big")
    d = {
        "mechanisms": list(mechanisms),
        "type": "RSA",
        "restrictions": {"tags": ["berlin"]},
        "public": {"modulus": b64((b"\x00" if pad else b"") + n), "publicExponent": "AQAB"},
        "operations": 3,
    }
    if label is not None:
        d["label"] = label
    return d


def ec_json(key, key_type, mechanisms=("ECDSA_Signature",), label=None):
    d = {
        "mechanisms": list(mechanisms),
        "type": key_type,
        "restrictions": {},
        "public": {"data": b64(key.public_key().public_bytes(*X962))},
        "operations": 0,
    }
    if label is not None:
        d["label"] = label
    return d


def ed_json(key, label=None):
    raw = key.public_key().public_bytes(serialization.Encoding.Raw,
                                        serialization.PublicFormat.Raw)
    d = {"mechanisms": ["EdDSA_Signature"], "type": "Curve25519", "restrictions": {},
         "public": {"data": b64(raw)}, "operations": 242}
    if label is not None:
        d["label"] = label
    return d


def generic_json(mechanisms=("AES_Encryption_CBC", "AES_Decryption_CBC"), label=None):
    d = {"mechanisms": list(mechanisms), "type": "Generic", "restrictions": {"tags": []},
         "operations": 242}
    if label is not None:
        d["label"] = label
    return d


def make_cert(key, serial=0x1234, cn="p11fast test", issuer_cn="p11fast CA"):
    now = datetime.datetime(2024, 1, 1, tzinfo=datetime.timezone.utc)
    return (
        x509.CertificateBuilder()
        .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, cn)]))
        .issuer_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, issuer_cn)]))
        .public_key(key.public_key())
        .serial_number(serial)
        .not_valid_before(now)
        .not_valid_after(now + datetime.timedelta(days=30))
        .sign(key, hashes.SHA256())
    )


class FakeHSM:
    """A transport answering like a NetHSM: GET /keys, /keys?label=, /keys/{id}, /keys/{id}/cert.
    ``label_filter`` False mimics an HSM that ignores the label query (before NetHSM 5)."""

    def __init__(self, label_filter=True):
        self.keys: dict[str, dict] = {}
        self.certs: dict[str, bytes] = {}
        self.log: list[str] = []
        self.label_filter = label_filter
        self.fail: dict[str, int] = {}

    def __call__(self, method, path, body, admin):
        assert method == "GET" and body is None and admin is False
        self.log.append(path)
        if path in self.fail:
            return self.fail[path], b'{"message": "nope"}'
        if path == "/keys" or path.startswith("/keys?"):
            ids = sorted(self.keys)
            if path.startswith("/keys?label=") and self.label_filter:
                from urllib.parse import unquote

                want = unquote(path[len("/keys?label="):])
                ids = [k for k in ids if self.keys[k].get("label") == want]
            return 200, json.dumps([{"id": k} for k in ids]).encode()
        m = re.fullmatch(r"/keys/([^/?]+)(/cert)?", path)
        assert m, path
        kid = m.group(1)
        if kid not in self.keys:
            return 404, b'{"message": "not found"}'
        if m.group(2):
            if kid in self.certs:
                return 200, self.certs[kid]
            return 404, b'{"message": "no certificate"}'
        return 200, json.dumps(self.keys[kid], indent=1).encode()

    def take(self):
        log, self.log = self.log, []
        return log


class Clock:
    def __init__(self):
        self.t = 1000.0

    def __call__(self):
        return self.t


def by_class(objs):
    out = {}
    for o in objs:
        assert o.cls not in out
        out[o.cls] = o
    return out


def mechs(b: bytes) -> list[int]:
    n = A.ULONG_SIZE
    return [int.from_bytes(b[i:i + n], sys.byteorder) for i in range(0, len(b), n)]
