"""NetHSM's delay after a failed passphrase check (keyfender `rate_limit.ml`): per client
address and user, across concurrent requests; and a user that does not exist costs the same
passphrase check as a wrong passphrase. The HSM runs with `vault.check_passphrase` instrumented
(a sitecustomize on its PYTHONPATH logs every call and the size of the digest it checked
against), so the tests count passphrase checks themselves instead of timing them."""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
import requests
from hsm_client import ADMIN, Client, status_from

from p11fast.hsm.testing import UNLOCK_PASSPHRASE, HsmProcess, running_hsm

PASSPHRASE = "guesser-passphrase"
WRONG = "not-the-passphrase"
USERS = ("burst", "loop", "existing", "elsewhere")
CHECK_LOGGER = """
import os

from p11fast.hsm import vault

_check = vault.check_passphrase


def check_passphrase(passphrase, stored):
    with open(os.environ["KDF_LOG"], "a") as log:
        log.write(f"stored={len(stored)}\\n")
    return _check(passphrase, stored)


vault.check_passphrase = check_passphrase
"""


class KdfLog:
    def __init__(self, path: Path) -> None:
        self.path = path
        self.seen = 0

    def new_calls(self) -> list[str]:
        """The passphrase checks logged since the last call of this method."""
        lines = self.path.read_text().splitlines() if self.path.exists() else []
        new, self.seen = lines[self.seen :], len(lines)
        return new


@pytest.fixture(scope="module")
def instrumented_hsm(tmp_path_factory) -> Iterator[tuple[HsmProcess, KdfLog]]:
    root = tmp_path_factory.mktemp("throttle")
    (root / "site").mkdir()
    (root / "site" / "sitecustomize.py").write_text(CHECK_LOGGER)
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("PYTHONPATH", str(root / "site"))
        patch.setenv("KDF_LOG", str(root / "kdf.log"))
        with running_hsm(root / "hsm") as hsm:
            client = Client(hsm)
            for user in USERS:
                body = {"realName": user, "role": "Operator", "passphrase": PASSPHRASE}
                assert client.put(f"/users/{user}", json=body, auth=ADMIN).status_code == 201
            yield hsm, KdfLog(root / "kdf.log")


@pytest.fixture
def instrumented(instrumented_hsm) -> tuple[HsmProcess, KdfLog]:
    """The instrumented HSM, with the calls made before this test already counted."""
    instrumented_hsm[1].new_calls()
    return instrumented_hsm


def login(hsm: HsmProcess, user: str, passphrase: str) -> int:
    response = requests.get(hsm.url + "/keys", auth=(user, passphrase), verify=False, timeout=60)
    return response.status_code


def checks_allowed_while(threads: list[threading.Thread]) -> int:
    """Run the threads to their end; how many passphrase checks the delay allows meanwhile:
    one, then one more per full second (a check starts only a second after a failure)."""
    began = time.monotonic()
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    return 1 + int(time.monotonic() - began)


def test_concurrent_wrong_passphrases_get_one_check_per_second_and_429_otherwise(
    instrumented,
) -> None:
    hsm, kdf = instrumented
    statuses: list[int] = []
    start = threading.Barrier(30)

    def guess() -> None:
        start.wait()
        statuses.append(login(hsm, "burst", WRONG))

    allowed = checks_allowed_while([threading.Thread(target=guess) for _ in range(30)])
    assert set(statuses) <= {401, 429} and len(statuses) == 30
    assert statuses.count(401) <= allowed
    assert len(kdf.new_calls()) <= allowed


def test_threads_guessing_in_a_loop_get_one_check_per_second(instrumented) -> None:
    hsm, kdf = instrumented
    statuses: list[int] = []
    deadline = time.monotonic() + 3

    def guess() -> None:
        while time.monotonic() < deadline:
            statuses.append(login(hsm, "loop", WRONG))

    allowed = checks_allowed_while([threading.Thread(target=guess) for _ in range(8)])
    assert set(statuses) <= {401, 429}
    assert statuses.count(401) <= allowed
    assert len(kdf.new_calls()) <= allowed
    time.sleep(1.1)
    assert login(hsm, "loop", PASSPHRASE) == 200


def test_a_missing_user_costs_the_same_passphrase_check_as_a_wrong_passphrase(instrumented) -> None:
    hsm, kdf = instrumented
    assert login(hsm, "existing", WRONG) == 401
    wrong_passphrase = kdf.new_calls()
    assert login(hsm, "nobody-by-this-name", WRONG) == 401
    missing_user = kdf.new_calls()
    assert len(wrong_passphrase) == 1
    assert missing_user == wrong_passphrase


def test_the_delay_is_per_client_address(instrumented) -> None:
    hsm, _ = instrumented
    assert status_from(hsm, "127.0.0.2", "GET", "/keys", ("elsewhere", WRONG)) == 401
    # The same user from 127.0.0.1 within the second: not delayed.
    assert login(hsm, "elsewhere", PASSPHRASE) == 200


def test_a_wrong_unlock_passphrase_delays_the_next_unlock_by_a_second(tmp_path) -> None:
    with running_hsm(tmp_path / "hsm") as hsm:
        client = Client(hsm)
        assert client.post("/lock", auth=ADMIN).status_code == 204
        assert client.post("/unlock", json={"passphrase": WRONG}).status_code == 403
        assert client.post("/unlock", json={"passphrase": UNLOCK_PASSPHRASE}).status_code == 429
        time.sleep(1.1)
        assert client.post("/unlock", json={"passphrase": UNLOCK_PASSPHRASE}).status_code == 204
