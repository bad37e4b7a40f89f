"""Request bodies are bounded while they are read: JSON nested deeper than 32 levels is a 400
(on public endpoints too, before any credential is asked for), and a multipart part that
passes its limit is answered 413 at once instead of after buffering the whole part."""

from __future__ import annotations

import json
from collections.abc import Iterator

import pytest
import requests
from hsm_client import ADMIN, basic, error_message, tls_socket

from p11fast.hsm.testing import HsmProcess, running_hsm


@pytest.fixture(scope="module")
def unprovisioned(tmp_path_factory) -> Iterator[HsmProcess]:
    with running_hsm(tmp_path_factory.mktemp("limits"), init=False) as hsm:
        yield hsm


def nested(depth: int) -> list:
    value: list = []
    for _ in range(depth - 1):
        value = [value]
    return value


@pytest.mark.parametrize(
    "body",
    [
        b"[" * 200_000,
        b'{"a": ' * 50_000,
        json.dumps({"unlockPassphrase": nested(33)}).encode(),
    ],
    ids=["200k-arrays", "50k-objects", "33-levels"],
)
def test_json_nested_too_deep_is_a_400_without_credentials(unprovisioned, body) -> None:
    response = requests.post(unprovisioned.url + "/provision", data=body, verify=False, timeout=30)
    assert response.status_code == 400
    assert "nested deeper than 32 levels" in error_message(response)


def test_json_nested_32_levels_is_parsed(unprovisioned) -> None:
    body = json.dumps({"unlockPassphrase": nested(31)}).encode()
    response = requests.post(unprovisioned.url + "/provision", data=body, verify=False, timeout=30)
    assert response.status_code == 400
    assert "unlockPassphrase has the wrong type" in error_message(response)


def chunk(data: bytes) -> bytes:
    return f"{len(data):x}\r\n".encode() + data + b"\r\n"


def test_a_multipart_part_past_its_limit_is_answered_413_before_it_ends(dev_hsm) -> None:
    sock = tls_socket(dev_hsm)
    sock.sendall(
        b"POST /api/v1/keys HTTP/1.1\r\nHost: hsm\r\nTransfer-Encoding: chunked\r\n"
        b"Content-Type: multipart/form-data; boundary=BOUNDARY\r\n"
        + f"Authorization: {basic(ADMIN)}\r\n\r\n".encode()
        + chunk(b'--BOUNDARY\r\nContent-Disposition: form-data; name="key_file"\r\n\r\n')
    )
    for _ in range(24):  # 1.5 MiB of a part limited to 1 MiB, and the part never ends
        sock.sendall(chunk(b"A" * (64 << 10)))
    sock.settimeout(20)
    answer = sock.recv(65536)
    sock.close()
    assert answer.startswith(b"HTTP/1.1 413 ")
