"""Key material: generation, import, public views and the cryptographic operations.

Pure functions over `cryptography` objects; every invalid input raises `BadRequest`.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import os
from dataclasses import dataclass, field

from cryptography.exceptions import UnsupportedAlgorithm
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, ed25519, padding, rsa, utils
from cryptography.hazmat.primitives.ciphers import Cipher, algorithms, modes

from p11fast.hsm import csr
from p11fast.hsm.errors import BadRequest

# Key type -> (curve, the hash whose digest ECDSA signs). The NetHSM takes a digest of exactly
# that hash's size — 64 bytes for P-521 (keyfender `src/keyfender/hsm.ml`, `Key.sign`) — and
# reads it as a number, which for these sizes is the standard's own reading (FIPS 186-5 6.4.1).
EC_CURVES: dict[str, tuple[type[ec.EllipticCurve], hashes.HashAlgorithm]] = {
    "EC_P256": (ec.SECP256R1, hashes.SHA256()),
    "EC_P384": (ec.SECP384R1, hashes.SHA384()),
    "EC_P521": (ec.SECP521R1, hashes.SHA512()),
    "EC_P256K1": (ec.SECP256K1, hashes.SHA256()),
    "BrainpoolP256": (ec.BrainpoolP256R1, hashes.SHA256()),
    "BrainpoolP384": (ec.BrainpoolP384R1, hashes.SHA384()),
    "BrainpoolP512": (ec.BrainpoolP512R1, hashes.SHA512()),
}
KEY_TYPES = ("RSA", "Curve25519", *EC_CURVES, "Generic")

HASHES: dict[str, hashes.HashAlgorithm] = {
    "MD5": hashes.MD5(),
    "SHA1": hashes.SHA1(),
    "SHA224": hashes.SHA224(),
    "SHA256": hashes.SHA256(),
    "SHA384": hashes.SHA384(),
    "SHA512": hashes.SHA512(),
}
RSA_MECHANISMS = (
    ["RSA_Decryption_RAW", "RSA_Decryption_PKCS1"]
    + [f"RSA_Decryption_OAEP_{h}" for h in HASHES]
    + ["RSA_Signature_PKCS1"]
    + [f"RSA_Signature_PSS_{h}" for h in HASHES]
)
AES_MECHANISMS = ["AES_Encryption_CBC", "AES_Decryption_CBC"]
ALL_MECHANISMS = (
    RSA_MECHANISMS + ["EdDSA_Signature", "ECDSA_Signature", "BIP340_Signature"] + AES_MECHANISMS
)
SIGN_MODES = {"PKCS1": "RSA_Signature_PKCS1", "EdDSA": "EdDSA_Signature",
              "ECDSA": "ECDSA_Signature", "BIP340": "BIP340_Signature"}  # fmt: skip
SIGN_MODES.update({f"PSS_{h}": f"RSA_Signature_PSS_{h}" for h in HASHES})
DECRYPT_MODES = {"RAW": "RSA_Decryption_RAW", "PKCS1": "RSA_Decryption_PKCS1",
                 "AES_CBC": "AES_Decryption_CBC"}  # fmt: skip
DECRYPT_MODES.update({f"OAEP_{h}": f"RSA_Decryption_OAEP_{h}" for h in HASHES})
ENCRYPT_MODES = {"AES_CBC": "AES_Encryption_CBC"}

# DigestInfo prefixes (RFC 8017 9.2 note 1): a PKCS1 sign request carrying one of these is
# signed by OpenSSL directly instead of by the slower textbook path.
DIGEST_INFO = {
    bytes.fromhex("3020300c06082a864886f70d020505000410"): hashes.MD5(),
    bytes.fromhex("3021300906052b0e03021a05000414"): hashes.SHA1(),
    bytes.fromhex("302d300d06096086480165030402040500041c"): hashes.SHA224(),
    bytes.fromhex("3031300d060960864801650304020105000420"): hashes.SHA256(),
    bytes.fromhex("3041300d060960864801650304020205000430"): hashes.SHA384(),
    bytes.fromhex("3051300d060960864801650304020305000440"): hashes.SHA512(),
}
AES_KEY_BITS = (128, 192, 256)
RSA_MIN_BITS, RSA_MAX_BITS = 1024, 8192


def allowed_mechanisms(key_type: str) -> list[str]:
    if key_type == "RSA":
        return RSA_MECHANISMS
    if key_type == "Curve25519":
        return ["EdDSA_Signature"]
    if key_type == "Generic":
        return AES_MECHANISMS
    return ["ECDSA_Signature"]


def check_mechanisms(key_type: str, mechanisms: list[str], imported: bool = False) -> None:
    # keyfender refuses an empty list when generating (`decode_generate_key_req` in
    # `src/keyfender/json.ml`) but stores an imported key without any (`Key.add_json`).
    if not mechanisms and not imported:
        raise BadRequest("at least one mechanism is required")
    allowed = allowed_mechanisms(key_type)
    for mechanism in mechanisms:
        if mechanism not in allowed:
            raise BadRequest(f"mechanism {mechanism} is not valid for key type {key_type}")


@dataclass
class KeyMaterial:
    type: str
    private: object  # a cryptography private key, or the secret bytes of a Generic key
    _crt: tuple[int, ...] | None = field(default=None, repr=False)

    # --- construction -------------------------------------------------------------------
    @classmethod
    def generate(cls, key_type: str, length: int | None) -> KeyMaterial:
        if key_type == "RSA":
            bits = _require_length(length, RSA_MIN_BITS, RSA_MAX_BITS)
            return cls(key_type, rsa.generate_private_key(65537, bits))
        if key_type == "Curve25519":
            return cls(key_type, ed25519.Ed25519PrivateKey.generate())
        if key_type == "Generic":
            # keyfender `generate_generic`: any length of 128 to 8192 bits, in whole bytes.
            bits = _require_length(length, 128, 8192)
            return cls(key_type, os.urandom((bits + 7) // 8))
        if key_type in EC_CURVES:
            return cls(key_type, ec.generate_private_key(EC_CURVES[key_type][0]()))
        raise BadRequest(f"unknown key type {key_type}")

    @classmethod
    def from_json(cls, key_type: str, private: dict) -> KeyMaterial:
        """Import from the `private` object of a PrivateKey request."""
        try:
            if key_type == "RSA":
                return cls(key_type, _rsa_from_primes(private))
            data = b64decode(_field(private, "data"), "private.data")
            if key_type == "Curve25519":
                return cls(key_type, ed25519.Ed25519PrivateKey.from_private_bytes(data))
            if key_type == "Generic":
                return cls(key_type, data)
            if key_type in EC_CURVES:
                scalar = int.from_bytes(data, "big")
                return cls(key_type, ec.derive_private_key(scalar, EC_CURVES[key_type][0]()))
        except (ValueError, UnsupportedAlgorithm) as exc:
            raise BadRequest(f"invalid private key: {exc}") from exc
        raise BadRequest(f"unknown key type {key_type}")

    @classmethod
    def from_pem(cls, pem: bytes) -> KeyMaterial:
        try:
            key = serialization.load_pem_private_key(pem, password=None)
        except (ValueError, TypeError, UnsupportedAlgorithm) as exc:
            raise BadRequest("key_file is not an unencrypted PEM private key") from exc
        if isinstance(key, rsa.RSAPrivateKey):
            return cls("RSA", key)
        if isinstance(key, ed25519.Ed25519PrivateKey):
            return cls("Curve25519", key)
        if isinstance(key, ec.EllipticCurvePrivateKey):
            for key_type, (curve, _) in EC_CURVES.items():
                if isinstance(key.curve, curve):
                    return cls(key_type, key)
        raise BadRequest("unsupported private key type in key_file")

    @classmethod
    def deserialize(cls, key_type: str, raw: bytes) -> KeyMaterial:
        if key_type == "Generic":
            return cls(key_type, raw)
        return cls(key_type, serialization.load_der_private_key(raw, password=None))

    def serialize(self) -> bytes:
        if isinstance(self.private, bytes):
            return self.private
        return self.private.private_bytes(
            serialization.Encoding.DER,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )

    def check_for_mechanisms(self, mechanisms: list[str], imported: bool = False) -> None:
        # A Generic key of any length may hold the AES mechanisms, as on a NetHSM: using it
        # for AES is what fails when it is not 128, 192 or 256 bits (see _aes_cbc).
        check_mechanisms(self.type, mechanisms, imported)
        if self.type == "RSA" and not RSA_MIN_BITS <= self.private.key_size <= RSA_MAX_BITS:
            raise BadRequest("RSA keys must be 1024 to 8192 bits long")

    # --- public views -------------------------------------------------------------------
    def public_json(self) -> dict | None:
        if self.type == "Generic":
            return None
        public = self.private.public_key()
        if self.type == "RSA":
            numbers = public.public_numbers()
            return {"modulus": b64int(numbers.n), "publicExponent": b64int(numbers.e)}
        if self.type == "Curve25519":
            raw = public.public_bytes(serialization.Encoding.Raw, serialization.PublicFormat.Raw)
        else:
            raw = public.public_bytes(
                serialization.Encoding.X962, serialization.PublicFormat.UncompressedPoint
            )
        return {"data": b64encode(raw)}

    def public_pem(self) -> bytes:
        if self.type == "Generic":
            raise BadRequest("Generic keys have no public key")
        return self.private.public_key().public_bytes(
            serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
        )

    def csr_pem(self, dn: dict) -> bytes:
        if self.type == "Generic":
            raise BadRequest("Generic keys cannot sign a CSR")
        return csr.csr_pem(self.private, dn)

    # --- operations ---------------------------------------------------------------------
    def sign(self, mode: str, message: bytes) -> bytes:
        if mode == "PKCS1":
            return self._sign_pkcs1(self._rsa(mode), message)
        if mode.startswith("PSS_"):
            return self._sign_pss(self._rsa(mode), HASHES[mode[4:]], message)
        if mode == "EdDSA":
            if self.type != "Curve25519":
                raise BadRequest("mode EdDSA needs a Curve25519 key")
            return self.private.sign(message)
        if mode == "ECDSA":
            if self.type not in EC_CURVES:
                raise BadRequest("mode ECDSA needs an EC key")
            digest = EC_CURVES[self.type][1]
            if len(message) != digest.digest_size:
                raise BadRequest(f"ECDSA on {self.type} needs a {digest.digest_size} byte digest")
            return self.private.sign(message, ec.ECDSA(utils.Prehashed(digest)))
        raise BadRequest(f"sign mode {mode} is not supported")

    def decrypt(self, mode: str, data: bytes, iv: bytes | None) -> bytes:
        if mode == "AES_CBC":
            if iv is None:
                raise BadRequest("iv is required for AES_CBC")
            return self._aes_cbc(data, iv, encrypt=False)
        key = self._rsa(mode)
        size = (key.key_size + 7) // 8
        if len(data) > size:
            raise BadRequest("input is longer than the key")
        try:
            if mode == "RAW":
                return self._textbook(int.from_bytes(data, "big")).to_bytes(size, "big")
            if mode == "PKCS1":
                return key.decrypt(data.rjust(size, b"\0"), padding.PKCS1v15())
            digest = HASHES[mode[5:]]
            if mode == "OAEP_MD5":
                # OpenSSL's OAEP refuses MD5; NetHSM offers it, so decode by hand.
                encoded = self._textbook(int.from_bytes(data, "big")).to_bytes(size, "big")
                return oaep_decode(encoded, "md5")
            oaep = padding.OAEP(mgf=padding.MGF1(digest), algorithm=digest, label=None)
            return key.decrypt(data.rjust(size, b"\0"), oaep)
        except (ValueError, UnsupportedAlgorithm) as exc:
            raise BadRequest("decryption failed") from exc

    def encrypt(self, mode: str, data: bytes, iv: bytes | None) -> tuple[bytes, bytes]:
        if mode != "AES_CBC":
            raise BadRequest(f"encrypt mode {mode} is not supported")
        iv = os.urandom(16) if iv is None else iv
        return self._aes_cbc(data, iv, encrypt=True), iv

    # --- helpers ------------------------------------------------------------------------
    def _rsa(self, mode: str) -> rsa.RSAPrivateKey:
        if self.type != "RSA":
            raise BadRequest(f"mode {mode} needs an RSA key")
        return self.private

    def _sign_pkcs1(self, key: rsa.RSAPrivateKey, message: bytes) -> bytes:
        size = (key.key_size + 7) // 8
        if len(message) > size - 11:
            raise BadRequest("message too long for PKCS1 padding with this key")
        for prefix, digest in DIGEST_INFO.items():
            if message.startswith(prefix) and len(message) == len(prefix) + digest.digest_size:
                return key.sign(message[len(prefix) :], padding.PKCS1v15(), utils.Prehashed(digest))
        encoded = b"\x00\x01" + b"\xff" * (size - len(message) - 3) + b"\x00" + message
        return self._textbook(int.from_bytes(encoded, "big")).to_bytes(size, "big")

    @staticmethod
    def _sign_pss(key: rsa.RSAPrivateKey, digest: hashes.HashAlgorithm, message: bytes) -> bytes:
        if len(message) != digest.digest_size:
            raise BadRequest(f"PSS_{digest.name.upper()} needs a {digest.digest_size} byte digest")
        pss = padding.PSS(mgf=padding.MGF1(digest), salt_length=digest.digest_size)
        try:
            return key.sign(message, pss, utils.Prehashed(digest))
        except ValueError as exc:
            raise BadRequest(f"cannot sign: {exc}") from exc

    def _textbook(self, value: int) -> int:
        """m^d mod n via CRT, for RAW decryption and PKCS1 data that is not a DigestInfo."""
        if self._crt is None:
            numbers = self.private.private_numbers()
            self._crt = (numbers.public_numbers.n, numbers.p, numbers.q,
                         numbers.dmp1, numbers.dmq1, numbers.iqmp)  # fmt: skip
        n, p, q, dp, dq, qinv = self._crt
        if value >= n:
            raise BadRequest("input is not smaller than the modulus")
        m1, m2 = pow(value, dp, p), pow(value, dq, q)
        return m2 + q * ((qinv * (m1 - m2)) % p)

    def _aes_cbc(self, data: bytes, iv: bytes, encrypt: bool) -> bytes:
        if self.type != "Generic":
            raise BadRequest("mode AES_CBC needs a Generic key")
        if len(self.private) * 8 not in AES_KEY_BITS:
            raise BadRequest("key is not an AES key")
        if len(iv) != 16:
            raise BadRequest("iv must be 16 bytes")
        if not data or len(data) % 16:
            raise BadRequest("AES_CBC data must be a non-empty multiple of 16 bytes")
        cipher = Cipher(algorithms.AES(self.private), modes.CBC(iv))
        op = cipher.encryptor() if encrypt else cipher.decryptor()
        return op.update(data) + op.finalize()


def mgf1(seed: bytes, length: int, hash_name: str) -> bytes:
    out = b"".join(
        hashlib.new(hash_name, seed + i.to_bytes(4, "big")).digest()
        for i in range(-(-length // hashlib.new(hash_name).digest_size))
    )
    return out[:length]


def _xor(a: bytes, b: bytes) -> bytes:
    return (int.from_bytes(a, "big") ^ int.from_bytes(b, "big")).to_bytes(len(a), "big")


def oaep_decode(encoded: bytes, hash_name: str) -> bytes:
    """EME-OAEP decoding with an empty label (RFC 8017 7.1.2 step 3)."""
    h_len = hashlib.new(hash_name).digest_size
    if len(encoded) < 2 * h_len + 2:
        raise ValueError("key too small for OAEP with this hash")
    masked_seed, masked_db = encoded[1 : 1 + h_len], encoded[1 + h_len :]
    seed = _xor(masked_seed, mgf1(masked_db, h_len, hash_name))
    db = _xor(masked_db, mgf1(seed, len(masked_db), hash_name))
    rest = db[h_len:].lstrip(b"\0")
    label_ok = hmac.compare_digest(db[:h_len], hashlib.new(hash_name).digest())
    if encoded[0] != 0 or not label_ok or not rest.startswith(b"\1"):
        raise ValueError("OAEP decoding error")
    return rest[1:]


def _require_length(length: int | None, low: int, high: int) -> int:
    if length is None or not low <= length <= high:
        raise BadRequest(f"length must be between {low} and {high} bits")
    return length


def _rsa_from_primes(private: dict) -> rsa.RSAPrivateKey:
    p = int.from_bytes(b64decode(_field(private, "primeP"), "primeP"), "big")
    q = int.from_bytes(b64decode(_field(private, "primeQ"), "primeQ"), "big")
    e = int.from_bytes(b64decode(_field(private, "publicExponent"), "publicExponent"), "big")
    if p < 3 or q < 3 or p == q or e < 3:
        raise ValueError("primes or exponent out of range")
    d = pow(e, -1, (p - 1) * (q - 1))
    numbers = rsa.RSAPrivateNumbers(
        p, q, d, rsa.rsa_crt_dmp1(d, p), rsa.rsa_crt_dmq1(d, q), rsa.rsa_crt_iqmp(p, q),
        rsa.RSAPublicNumbers(e, p * q),
    )  # fmt: skip
    return numbers.private_key()


def _field(obj: dict, name: str) -> str:
    value = obj.get(name)
    if not isinstance(value, str):
        raise BadRequest(f"private.{name} is required")
    return value


def b64encode(data: bytes) -> str:
    return base64.b64encode(data).decode()


def b64int(value: int) -> str:
    return b64encode(value.to_bytes((value.bit_length() + 7) // 8 or 1, "big"))


def b64decode(value: str, name: str) -> bytes:
    try:
        return base64.b64decode(value, validate=True)
    except (binascii.Error, ValueError) as exc:
        raise BadRequest(f"{name} is not valid base64") from exc
