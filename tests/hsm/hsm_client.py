"""Raw HTTP access to a software HSM for tests (imported by the tests in this folder)."""

from __future__ import annotations

import requests
import urllib3

from p11fast.hsm.testing import (
    ADMIN_PASSPHRASE,
    ADMIN_USER,
    OPERATOR_PASSPHRASE,
    OPERATOR_USER,
    HsmProcess,
)

urllib3.disable_warnings(urllib3.exceptions.InsecureRequestWarning)

ADMIN = (ADMIN_USER, ADMIN_PASSPHRASE)
OPERATOR = (OPERATOR_USER, OPERATOR_PASSPHRASE)


class Client:
    """Raw HTTP against one HSM: `client.get("/keys", auth=ADMIN)`."""

    def __init__(self, hsm: HsmProcess) -> None:
        self.hsm = hsm
        self.session = requests.Session()

    def request(self, method: str, path: str, **kwargs) -> requests.Response:
        kwargs.setdefault("timeout", 30)
        # per request: a REQUESTS_CA_BUNDLE in the environment overrides session.verify
        kwargs.setdefault("verify", False)
        return self.session.request(method, self.hsm.url + path, **kwargs)

    def get(self, path: str, **kwargs) -> requests.Response:
        return self.request("GET", path, **kwargs)

    def post(self, path: str, **kwargs) -> requests.Response:
        return self.request("POST", path, **kwargs)

    def put(self, path: str, **kwargs) -> requests.Response:
        return self.request("PUT", path, **kwargs)

    def delete(self, path: str, **kwargs) -> requests.Response:
        return self.request("DELETE", path, **kwargs)


def error_message(response: requests.Response) -> str:
    """The spec's error body; asserting on it checks the body is JSON with a message."""
    assert response.headers["Content-Type"].startswith("application/json"), response.text
    message = response.json()["message"]
    assert isinstance(message, str) and message
    return message
