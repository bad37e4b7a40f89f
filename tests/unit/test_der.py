"""DER helpers: built values checked against `cryptography` (imported by the tests only)."""

import datetime

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, ed25519, rsa
from cryptography.x509.oid import NameOID

from p11fast import der

# The NetHSM API spec's PemCert example: an X.509 v1 certificate (no [0] version field) with a
# 4096-bit RSA key (long-form lengths).
SPEC_CERT_PEM = b"""\
-----BEGIN CERTIFICATE-----
MIIEvDCCAqQCCQCZ9VKHZSKydDANBgkqhkiG9w0BAQsFADAgMQ4wDAYDVQQIDAVo
ZWxsbzEOMAwGA1UEBwwFaGVsbG8wHhcNMTgxMDMwMTI0MDQ3WhcNMTkxMDMwMTI0
MDQ3WjAgMQ4wDAYDVQQIDAVoZWxsbzEOMAwGA1UEBwwFaGVsbG8wggIiMA0GCSqG
SIb3DQEBAQUAA4ICDwAwggIKAoICAQC8WRImgeu4U6Yg5q0/SvoieQL5JwPHaCrN
6Cc0mj8pnzTBu/f0QYNentcnu0EclD99kla6/gdiJnt0b/IT23o37+t2n0BvEgVQ
MJxJ/BjIqSZCykq4SWHKia1OS7tJKE2Q/hgGq/RQJ0zecWKA9SuafXDt0plw0saz
P8ZosFyToMYnPB54SzXj4qeD5t2L2dOamTTyziw/GJDGdwssImEDfeWyMRRyHcIa
u9HNGaTxjCdBGzCR+PEX3ZHhGzl5iMlgtZUICgXMgAvFZHHEYNtyCW9ZzUB2ZKE2
nMbu8hbl7GXRCdJaAqlJfKiGp/WvbmrLhCzcwqhu4UnqGXOxeEQryrkPAbiLafqb
fPLHB7dr8OEGlUzp1SCHR1JxwdBVohuO2lL+O5nMD3ZVdVnh2F5Et6I9lO4w9+5n
aI6pmO4oy9PsqKvUjxVnEeo1Ee1n9o/4T6fe6XBIQLPqEmy2IXynZP0eJn1Yu9SF
TkTSmJ+jRiU7EMaagQrM4Ds5seVNVWKOvUjDQCV+QRZaaPcrkMoFtjLCVMhLgy7M
/Dfl63qCcdVkPwdbI/apjfG8qMrez4k3qAZDYgS3fujyuq9wv7xbq2+o0Ck4Ono2
mMAA6JDSZr8XwR3ac/UK1KGv+weh1fOVO+c6mSN9M+W1MtkJS+i4/Aj2yDCJzVk3
GZpd5/E6WwIDAQABMA0GCSqGSIb3DQEBCwUAA4ICAQAB+8+1dk20P6R+RvDRs1mo
e1CegaPH2bl9t1WVuXJIUkrIGDceVr5f19pcaNQRYwZuoQd8VQXCZUpWbo//TWxl
ItS3prQgcrfcTi7gCzp1+q1bZk6H21tzESDJTXPFp019/ypdUB4Jsty7qQL73sE3
nj67DH+srPCknAhfFag0dPOOjAY19IrIomtBMlvYNpb5XupEUAQFCjk6VdLVAzzl
M5Swj+kmLA0OUHTF2zAwj2k+B9RAkbetu/lXLwUiiQNG00j8YP03lErxDd29m2jl
NFlSn8YYsgzmihF5fUFTJXP5tS7lF4FnLNbw9pfdeVZBT1uTOcckmFv6n6edttZS
FhC70hBB8tFFtemGFquZ0N7w8O7DmIYI936n283rzxyuWdi+JqOUQ0KzpGbFOP3t
AOdVcx/JW8kjDdWRcRDr85M4MnkG6HEzW4uzGBtxBplL7KH0L8LX+lx6ySjIrbRD
QtwBxwZGtHZJAqskO6vobzzybCKuVUaQwkPrQsK5iLA6Nn1Yxu6XmtlvoPeNIc63
Pa3ix8vNFbBTtS6iBdbOPse5qgRV0DC94ocedzKw4QzQRa5REIniJ2X8hVoVAcBh
3nQKyZApl2I/pZMlbZ0Cg5yxjhBaxKwci7jyoMerMMo2EdbZN87gP+2x6tKuY1MO
35mqzHn+FjWq0eAtpzhO5Q==
-----END CERTIFICATE-----
"""

CURVES = {
    "EC_P256": (ec.SECP256R1(), "06082a8648ce3d030107"),
    "EC_P384": (ec.SECP384R1(), "06052b81040022"),
    "EC_P521": (ec.SECP521R1(), "06052b81040023"),
    "EC_P256K1": (ec.SECP256K1(), "06052b8104000a"),
    "BrainpoolP256": (ec.BrainpoolP256R1(), "06092b2403030208010107"),
    "BrainpoolP384": (ec.BrainpoolP384R1(), "06092b240303020801010b"),
    "BrainpoolP512": (ec.BrainpoolP512R1(), "06092b240303020801010d"),
}
SPKI = (serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo)
X962 = (serialization.Encoding.X962, serialization.PublicFormat.UncompressedPoint)


@pytest.mark.parametrize("key_type", sorted(CURVES))
def test_ec_params_and_spki_match_cryptography(key_type):
    curve, oid_hex = CURVES[key_type]
    assert der.ec_params_for_key_type(key_type) == bytes.fromhex(oid_hex)
    assert der.key_type_for_ec_params(bytes.fromhex(oid_hex)) == key_type
    pub = ec.generate_private_key(curve).public_key()
    point = pub.public_bytes(*X962)
    assert len(point) == 1 + 2 * der.field_len(key_type)
    spki = der.ec_spki(key_type, point)
    assert spki == pub.public_bytes(*SPKI)
    assert serialization.load_der_public_key(spki) == pub


def test_ed25519_params_and_spki():
    assert der.ec_params_for_key_type("Curve25519") == bytes.fromhex("06032b6570")
    assert der.key_type_for_ec_params(bytes.fromhex("06032b6570")) == "Curve25519"
    # PKCS#11 3.0's printable-string form and the old GnuPG OID are accepted when reading
    assert der.key_type_for_ec_params(b"\x13\x0cedwards25519") == "Curve25519"
    assert der.key_type_for_ec_params(bytes.fromhex("06092b06010401da470f01")) == "Curve25519"
    pub = ed25519.Ed25519PrivateKey.generate().public_key()
    raw = pub.public_bytes(serialization.Encoding.Raw, serialization.PublicFormat.Raw)
    spki = der.ec_spki("Curve25519", raw)
    assert spki == pub.public_bytes(*SPKI)
    assert der.field_len("Curve25519") == 32


def test_unknown_params_and_types():
    assert der.ec_params_for_key_type("RSA") is None
    assert der.ec_params_for_key_type("Generic") is None
    assert der.key_type_for_ec_params(der.oid("1.3.132.0.33")) is None  # P-224
    assert der.key_type_for_ec_params(b"") is None


def test_field_len_and_bits():
    expected = {
        "EC_P256": (32, 256), "EC_P384": (48, 384), "EC_P521": (66, 521),
        "EC_P256K1": (32, 256), "BrainpoolP256": (32, 256), "BrainpoolP384": (48, 384),
        "BrainpoolP512": (64, 512), "Curve25519": (32, 255),
    }
    for kt, (n, bits) in expected.items():
        assert der.field_len(kt) == n
        assert der.field_bits(kt) == bits
    with pytest.raises(KeyError):
        der.field_len("RSA")


def test_octet_string_lengths():
    assert der.octet_string(b"") == b"\x04\x00"
    assert der.octet_string(b"\x01" * 65) == b"\x04\x41" + b"\x01" * 65
    assert der.octet_string(b"\x02" * 133) == b"\x04\x81\x85" + b"\x02" * 133
    assert der.octet_string(b"\x03" * 300) == b"\x04\x82\x01\x2c" + b"\x03" * 300


def test_integer_encoding():
    assert der.integer(0) == b"\x02\x01\x00"
    assert der.integer(127) == b"\x02\x01\x7f"
    assert der.integer(128) == b"\x02\x02\x00\x80"
    assert der.integer(256) == b"\x02\x02\x01\x00"
    assert der.integer(b"\x00\x00\x01\x00") == b"\x02\x02\x01\x00"
    assert der.integer(b"\xff") == b"\x02\x02\x00\xff"
    assert der.integer(b"") == b"\x02\x01\x00"


def test_oid_encoding():
    assert der.oid("1.2.840.113549.1.1.1") == bytes.fromhex("06092a864886f70d010101")
    assert der.oid("2.999.3") == bytes.fromhex("0603883703")
    with pytest.raises(ValueError):
        der.oid("3.1")


@pytest.mark.parametrize("bits", [1024, 2048])
def test_rsa_spki_matches_cryptography(bits):
    pub = rsa.generate_private_key(65537, bits).public_key()
    n = pub.public_numbers().n.to_bytes(bits // 8, "big")
    e = (65537).to_bytes(3, "big")
    spki = der.rsa_spki(n, e)
    assert spki == pub.public_bytes(*SPKI)
    assert serialization.load_der_public_key(spki) == pub


def _self_signed(key, serial, cn="p11fast test", issuer_cn=None):
    now = datetime.datetime(2024, 1, 1, tzinfo=datetime.timezone.utc)
    subject = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, cn),
                         x509.NameAttribute(NameOID.ORGANIZATION_NAME, "p11fast")])
    issuer = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, issuer_cn or cn)])
    return (
        x509.CertificateBuilder()
        .subject_name(subject)
        .issuer_name(issuer)
        .public_key(key.public_key())
        .serial_number(serial)
        .not_valid_before(now)
        .not_valid_after(now + datetime.timedelta(days=365))
        .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
        .sign(key, hashes.SHA256())
    )


def _check_fields(cert_der):
    cert = x509.load_der_x509_certificate(cert_der)
    f = der.certificate_fields(cert_der)
    assert f.subject == cert.subject.public_bytes()
    assert f.issuer == cert.issuer.public_bytes()
    assert f.serial == der.integer(cert.serial_number)
    assert f.spki == cert.public_key().public_bytes(*SPKI)
    return f


@pytest.mark.parametrize("serial", [1, 0x7F, 0x80, 0xFFFF, (1 << 159) - 1, 1 << 158])
def test_certificate_fields_v3(serial):
    key = ec.generate_private_key(ec.SECP256R1())
    cert = _self_signed(key, serial, issuer_cn="Some CA")
    f = _check_fields(cert.public_bytes(serialization.Encoding.DER))
    assert f.serial[0] == 0x02
    assert f.subject != f.issuer


def test_certificate_fields_v1_spec_example():
    cert_der = der.pem_to_der(SPEC_CERT_PEM)
    assert cert_der == x509.load_pem_x509_certificate(SPEC_CERT_PEM).public_bytes(
        serialization.Encoding.DER)
    f = _check_fields(cert_der)
    assert f.serial == der.integer(11093863998567920244)
    assert f.serial[:3] == b"\x02\x09\x00"  # high bit set: leading zero octet


def test_pem_to_der():
    key = ec.generate_private_key(ec.SECP256R1())
    c1 = _self_signed(key, 1)
    c2 = _self_signed(key, 2)
    d1 = c1.public_bytes(serialization.Encoding.DER)
    chain = c1.public_bytes(serialization.Encoding.PEM) + c2.public_bytes(
        serialization.Encoding.PEM)
    assert der.pem_to_der(chain) == d1  # first certificate of a chain
    assert der.pem_to_der(d1) == d1  # DER passes through
    assert der.pem_to_der(b"junk\r\n" + chain.replace(b"\n", b"\r\n")) == d1
    with pytest.raises(der.DERError):
        der.pem_to_der(b"hello")
    with pytest.raises(der.DERError):
        der.pem_to_der(b"-----BEGIN CERTIFICATE-----\nAAAA\n")


def test_certificate_fields_rejects_garbage():
    for bad in [b"", b"\x30", b"\x30\x03\x02\x01\x01", b"\x04\x00", b"\x30\x82\xff\xff"]:
        with pytest.raises(der.DERError):
            der.certificate_fields(bad)


def test_read_tlv():
    assert der.read_tlv(b"\x04\x02ab") == (4, 2, 4)
    assert der.read_tlv(b"\x30\x81\x80" + b"\x00" * 128) == (0x30, 3, 131)
    with pytest.raises(der.DERError):
        der.read_tlv(b"\x04\x05ab")
    with pytest.raises(der.DERError):
        der.read_tlv(b"\x1f\x01\x00")
