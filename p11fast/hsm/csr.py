"""Certificate signing requests and self-signed certificates, for keys and for the TLS key.

The request body is NetHSM's DistinguishedName: `commonName` (required, not empty, keyfender
`src/keyfender/json.ml` decode_subject) and optional string fields; `subjectAltNames` defaults
to the common name, and an empty list adds no SAN extension.
"""

from __future__ import annotations

import datetime
import ipaddress
from typing import TYPE_CHECKING

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, ed25519
from cryptography.x509.oid import NameOID

from p11fast.hsm.errors import BadRequest

if TYPE_CHECKING:  # validate imports keys, which imports this module
    from p11fast.hsm.validate import Body

NAME_OIDS = {
    "countryName": NameOID.COUNTRY_NAME,
    "stateOrProvinceName": NameOID.STATE_OR_PROVINCE_NAME,
    "localityName": NameOID.LOCALITY_NAME,
    "organizationName": NameOID.ORGANIZATION_NAME,
    "organizationalUnitName": NameOID.ORGANIZATIONAL_UNIT_NAME,
    "commonName": NameOID.COMMON_NAME,
    "emailAddress": NameOID.EMAIL_ADDRESS,
}
CERT_DAYS = 3650


def read_dn(body: Body) -> dict:
    """A DistinguishedName request body; rejects what keyfender rejects."""
    dn = {name: body.string(name, name == "commonName") for name in NAME_OIDS}
    alt_names = body.strings("subjectAltNames", False)
    body.done()
    if not dn["commonName"]:
        raise BadRequest("commonName is empty")
    if alt_names is not None:
        dn["subjectAltNames"] = alt_names
    return dn


def csr_pem(private_key, dn: dict) -> bytes:
    builder = x509.CertificateSigningRequestBuilder().subject_name(_subject(dn))
    alt_names = dn.get("subjectAltNames", [dn["commonName"]])
    if alt_names:
        san = x509.SubjectAlternativeName([_general_name(n) for n in alt_names])
        builder = builder.add_extension(san, critical=False)
    try:
        csr = builder.sign(private_key, signature_hash(private_key))
    except ValueError as exc:  # a value the attribute's ASN.1 type cannot hold
        raise BadRequest(f"cannot build CSR: {exc}") from exc
    return csr.public_bytes(serialization.Encoding.PEM)


def self_signed(private_key, common_name: str, alt_names: list[x509.GeneralName]) -> bytes:
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, common_name)])
    now = datetime.datetime.now(datetime.timezone.utc)
    cert = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(private_key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(days=1))
        .not_valid_after(now + datetime.timedelta(days=CERT_DAYS))
        .add_extension(x509.SubjectAlternativeName(alt_names), critical=False)
        .sign(private_key, signature_hash(private_key))
    )
    return cert.public_bytes(serialization.Encoding.PEM)


def signature_hash(private_key) -> hashes.HashAlgorithm | None:
    """The digest matching the key's strength (none for Ed25519, which hashes itself)."""
    if isinstance(private_key, ed25519.Ed25519PrivateKey):
        return None
    if isinstance(private_key, ec.EllipticCurvePrivateKey):
        bits = private_key.curve.key_size
        if bits > 384:
            return hashes.SHA512()
        if bits > 256:
            return hashes.SHA384()
    return hashes.SHA256()


def _subject(dn: dict) -> x509.Name:
    try:
        return x509.Name(
            [x509.NameAttribute(oid, dn[name]) for name, oid in NAME_OIDS.items() if dn.get(name)]
        )
    except ValueError as exc:
        raise BadRequest(f"invalid distinguished name: {exc}") from exc


def _general_name(name: str) -> x509.GeneralName:
    if name.startswith("IP:"):
        try:
            return x509.IPAddress(ipaddress.ip_address(name[3:]))
        except ValueError as exc:
            raise BadRequest(f"invalid IP address in subjectAltNames: {name[:64]!r}") from exc
    if not name.isascii():
        # A DNS name is ASCII on the wire: internationalised names go as IDNA A-labels.
        try:
            name = name.encode("idna").decode("ascii")
        except UnicodeError as exc:
            raise BadRequest(f"not a valid DNS name in subjectAltNames: {name[:64]!r}") from exc
    return x509.DNSName(name)
