"""Keys the object model's tests share (generated once per session: RSA takes a while)."""

import pytest
from cryptography.hazmat.primitives.asymmetric import ec, rsa


@pytest.fixture(scope="session")
def rsa_key():
    return rsa.generate_private_key(65537, 2048)


@pytest.fixture(scope="session")
def p256_key():
    return ec.generate_private_key(ec.SECP256R1())
