"""Tiny DER helpers for the object model (no ``cryptography`` import: cold-start path).

Builds what PKCS#11 attributes need (EC parameters, EC points, SubjectPublicKeyInfo) and walks
an X.509 certificate far enough to read the TBSCertificate fields CKA_SERIAL_NUMBER, CKA_ISSUER,
CKA_SUBJECT and the certificate's SubjectPublicKeyInfo.

Ed25519 (NetHSM ``Curve25519``): CKA_EC_PARAMS is the DER OBJECT IDENTIFIER 1.3.101.112
(id-Ed25519, RFC 8410), which PKCS#11 3.0 allows next to the printable string
"edwards25519". The OID is what OpenSC's pkcs11-tool (0.23+) and GnuTLS' p11tool map to
Ed25519, what Nitrokey's module returns, and what SoftHSM writes. When *reading* params (key
generation/import templates) we accept the OID, the printable string "edwards25519" and the old
GnuPG OID 1.3.6.1.4.1.11591.15.1.
"""

from binascii import a2b_base64 as _a2b_base64
from binascii import b2a_base64 as _b2a_base64


class DERError(ValueError):
    """Malformed DER (or PEM) input."""


# --- encoding ---------------------------------------------------------------------------------


def length(n: int) -> bytes:
    """DER length octets."""
    if n < 0x80:
        return bytes((n,))
    b = n.to_bytes((n.bit_length() + 7) // 8, "big")
    return bytes((0x80 | len(b),)) + b


def tlv(tag: int, content: bytes) -> bytes:
    return bytes((tag,)) + length(len(content)) + content


def sequence(*items: bytes) -> bytes:
    return tlv(0x30, b"".join(items))


def integer(value: int | bytes) -> bytes:
    """DER INTEGER of a non-negative int or of big-endian unsigned bytes."""
    if isinstance(value, int):
        if value < 0:
            raise ValueError("negative INTEGER not supported")
        value = value.to_bytes(max(1, (value.bit_length() + 7) // 8), "big")
    value = bytes(value).lstrip(bytes.fromhex("00")) or bytes.fromhex("00")
    if value[0] & 0x80:
        value = bytes.fromhex("00") + value
    return tlv(0x02, value)


def octet_string(data: bytes) -> bytes:
    """DER OCTET STRING (CKA_EC_POINT)."""
    return tlv(0x04, bytes(data))


def bit_string(data: bytes) -> bytes:
    """DER BIT STRING with no unused bits."""
    return tlv(0x03, bytes.fromhex("00") + bytes(data))


NULL = bytes.fromhex("0500")


def oid(dotted: str) -> bytes:
    """DER OBJECT IDENTIFIER from dotted notation."""
    arcs = [int(a) for a in dotted.split(".")]
    if len(arcs) < 2 or arcs[0] > 2 or (arcs[0] < 2 and arcs[1] >= 40):
        raise ValueError(f"invalid OID {dotted!r}")
    out = bytearray()
    for arc in [arcs[0] * 40 + arcs[1], *arcs[2:]]:
        chunk = [arc & 0x7F]
        arc >>= 7
        while arc:
            chunk.append(0x80 | (arc & 0x7F))
            arc >>= 7
        out += bytes(reversed(chunk))
    return tlv(0x06, bytes(out))


# --- curves -----------------------------------------------------------------------------------

# The OIDs below are DER already, each the oid() of the dotted form beside it (test_der checks
# them against cryptography): oid() here would cost every cold start ~45k instructions each.

#: NetHSM key type -> (curve OID, field length in bytes, field size in bits)
_CURVES = {
    "EC_P256": (bytes.fromhex("06082a8648ce3d030107"), 32, 256),  # 1.2.840.10045.3.1.7
    "EC_P384": (bytes.fromhex("06052b81040022"), 48, 384),  # 1.3.132.0.34
    "EC_P521": (bytes.fromhex("06052b81040023"), 66, 521),  # 1.3.132.0.35
    "EC_P256K1": (bytes.fromhex("06052b8104000a"), 32, 256),  # 1.3.132.0.10
    "BrainpoolP256": (bytes.fromhex("06092b2403030208010107"), 32, 256),  # 1.3.36.3.3.2.8.1.1.7
    "BrainpoolP384": (bytes.fromhex("06092b240303020801010b"), 48, 384),  # 1.3.36.3.3.2.8.1.1.11
    "BrainpoolP512": (bytes.fromhex("06092b240303020801010d"), 64, 512),  # 1.3.36.3.3.2.8.1.1.13
    "Curve25519": (bytes.fromhex("06032b6570"), 32, 255),  # 1.3.101.112
}
_PARAMS = {k: v[0] for k, v in _CURVES.items()}
_TYPE_FOR_PARAMS = {v: k for k, v in _PARAMS.items()}
_TYPE_FOR_PARAMS[tlv(0x13, b"edwards25519")] = "Curve25519"
_TYPE_FOR_PARAMS[bytes.fromhex("06092b06010401da470f01")] = "Curve25519"  # 1.3.6.1.4.1.11591.15.1

OID_RSA_ENCRYPTION = bytes.fromhex("06092a864886f70d010101")  # 1.2.840.113549.1.1.1
OID_EC_PUBLIC_KEY = bytes.fromhex("06072a8648ce3d0201")  # 1.2.840.10045.2.1
OID_ED25519 = _PARAMS["Curve25519"]


def ec_params_for_key_type(key_type: str) -> bytes | None:
    """CKA_EC_PARAMS (DER OID of the named curve) of a NetHSM EC key type, else None."""
    return _PARAMS.get(key_type)


def key_type_for_ec_params(der: bytes) -> str | None:
    """NetHSM key type for a CKA_EC_PARAMS value, else None."""
    return _TYPE_FOR_PARAMS.get(bytes(der))


def field_len(key_type: str) -> int:
    """Field element length in bytes (32/48/66/32/32/48/64; 32 for Curve25519)."""
    return _CURVES[key_type][1]


def field_bits(key_type: str) -> int:
    """Field size in bits (256/384/521/256/256/384/512; 255 for Curve25519)."""
    return _CURVES[key_type][2]


# --- SubjectPublicKeyInfo ---------------------------------------------------------------------


def rsa_spki(modulus: bytes, public_exponent: bytes) -> bytes:
    """SubjectPublicKeyInfo of an RSA public key (rsaEncryption, NULL parameters)."""
    rsa_public_key = sequence(integer(modulus), integer(public_exponent))
    return sequence(sequence(OID_RSA_ENCRYPTION, NULL), bit_string(rsa_public_key))


def ec_spki(key_type: str, point: bytes) -> bytes:
    """SubjectPublicKeyInfo of an EC key (id-ecPublicKey + named curve) or of an Ed25519 key
    (id-Ed25519, no parameters) given the uncompressed point / the 32-byte public key."""
    if key_type == "Curve25519":
        return sequence(sequence(OID_ED25519), bit_string(point))
    return sequence(sequence(OID_EC_PUBLIC_KEY, _PARAMS[key_type]), bit_string(point))


# --- decoding ---------------------------------------------------------------------------------


def read_tlv(data: bytes, pos: int = 0, end: int | None = None) -> tuple[int, int, int]:
    """Parse one TLV at ``pos``: returns (tag, content_start, content_end). Single-byte tags
    only (all X.509 needs); definite lengths only (DER)."""
    if end is None:
        end = len(data)
    if pos + 2 > end:
        raise DERError("truncated TLV")
    tag = data[pos]
    if tag & 0x1F == 0x1F:
        raise DERError("multi-byte tags are not supported")
    n = data[pos + 1]
    pos += 2
    if n & 0x80:
        k = n & 0x7F
        if k == 0 or k > 4 or pos + k > end:
            raise DERError("bad length")
        n = int.from_bytes(data[pos:pos + k], "big")
        pos += k
    if pos + n > end:
        raise DERError("truncated content")
    return tag, pos, pos + n


def der_to_pem(data: bytes, label: bytes = b"CERTIFICATE") -> bytes:
    """A PEM block as RFC 7468 §2 writes it: base64 in lines of 64 characters (tools that
    parse strictly refuse longer lines; nethsm-pkcs11 writes the same)."""
    text = _b2a_base64(data, newline=False)
    lines = b"".join(text[i : i + 64] + b"\n" for i in range(0, len(text), 64))
    return b"-----BEGIN " + label + b"-----\n" + lines + b"-----END " + label + b"-----\n"


def pem_to_der(data: bytes, label: bytes = b"CERTIFICATE") -> bytes:
    """DER of the first ``-----BEGIN <label>-----`` block; DER input is returned unchanged."""
    data = bytes(data)
    begin = b"-----BEGIN " + label + b"-----"
    i = data.find(begin)
    if i < 0:
        if data[:1] == bytes.fromhex("30"):
            return data
        raise DERError("neither PEM nor DER")
    i += len(begin)
    j = data.find(b"-----END " + label + b"-----", i)
    if j < 0:
        raise DERError("unterminated PEM block")
    try:
        return _a2b_base64(data[i:j])
    except ValueError as e:  # binascii.Error
        raise DERError(f"bad PEM base64: {e}") from None


class CertFields:
    """TBSCertificate fields of an X.509 certificate, each as its complete DER TLV."""

    __slots__ = ("serial", "issuer", "subject", "spki")

    def __init__(self, serial: bytes, issuer: bytes, subject: bytes, spki: bytes):
        self.serial = serial
        self.issuer = issuer
        self.subject = subject
        self.spki = spki


def certificate_fields(cert: bytes) -> CertFields:
    """Walk Certificate -> TBSCertificate and return serialNumber (INTEGER), issuer and subject
    (Name) and subjectPublicKeyInfo, each as the DER TLV PKCS#11 wants."""
    cert = bytes(cert)
    tag, s, e = read_tlv(cert)
    if tag != 0x30 or e != len(cert):
        raise DERError("certificate is not one SEQUENCE")
    tag, s, e = read_tlv(cert, s, e)  # TBSCertificate
    if tag != 0x30:
        raise DERError("TBSCertificate is not a SEQUENCE")
    fields = []
    pos = s
    while pos < e and len(fields) < 7:
        tag, cs, ce = read_tlv(cert, pos, e)
        if not fields and tag == 0xA0:  # [0] EXPLICIT version
            pos = ce
            continue
        fields.append((tag, cert[pos:ce]))
        pos = ce
    # serialNumber, signature, issuer, validity, subject, subjectPublicKeyInfo
    if len(fields) < 6:
        raise DERError("TBSCertificate too short")
    want = (0x02, 0x30, 0x30, 0x30, 0x30, 0x30)
    if tuple(t for t, _ in fields[:6]) != want:
        raise DERError("unexpected TBSCertificate structure")
    return CertFields(fields[0][1], fields[2][1], fields[4][1], fields[5][1])
