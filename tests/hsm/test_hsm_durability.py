"""Whatever the HSM acknowledged survives SIGKILL."""

from __future__ import annotations

import base64
import threading
import time

import requests
from hsm_client import ADMIN, OPERATOR, Client

from p11fast.hsm.testing import UNLOCK_PASSPHRASE, running_hsm


def generate_until_killed(client: Client, created: list[str], stop: threading.Event) -> None:
    body = {"mechanisms": ["ECDSA_Signature"], "type": "EC_P256"}
    while not stop.is_set():
        try:
            response = client.post("/keys/generate", json=body, auth=ADMIN, timeout=5)
        except requests.RequestException:
            return  # the server died mid-request: that key may or may not exist
        if response.status_code == 201:
            created.append(response.json()["id"])


def test_kill_during_key_generation(tmp_path) -> None:
    with running_hsm(tmp_path / "hsm") as hsm:
        client = Client(hsm)
        created: list[str] = []
        stop = threading.Event()
        workers = [
            threading.Thread(target=generate_until_killed, args=(client, created, stop))
            for _ in range(4)
        ]
        for worker in workers:
            worker.start()
        deadline = time.monotonic() + 30
        while len(created) < 40 and time.monotonic() < deadline:
            time.sleep(0.01)
        assert created, "no key generation succeeded"
        hsm.kill()
        stop.set()
        for worker in workers:
            worker.join()
        acknowledged = list(created)

        # init turned unattended boot on: the HSM comes back Operational by itself.
        hsm.start()
        client = Client(hsm)
        assert client.get("/health/state").json() == {"state": "Operational"}
        assert client.put("/config/unattended-boot", json={"status": "off"}, auth=ADMIN).ok
        hsm.kill()
        hsm.start()
        # Without unattended boot it waits Locked for the unlock passphrase.
        assert client.get("/health/state").json() == {"state": "Locked"}
        response = client.post("/unlock", json={"passphrase": UNLOCK_PASSPHRASE})
        assert response.status_code == 204

        listed = {item["id"] for item in client.get("/keys", auth=ADMIN).json()}
        assert set(acknowledged) <= listed
        message = base64.b64encode(b"\1" * 32).decode()
        for key_id in acknowledged:
            sign = {"mode": "ECDSA", "message": message}
            response = client.post(f"/keys/{key_id}/sign", json=sign, auth=OPERATOR)
            assert response.status_code == 200, key_id
