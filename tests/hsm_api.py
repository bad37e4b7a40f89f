"""A small administrator client for the software HSM, used by tests to set up keys and to
check what the PKCS#11 module did through the HSM's own API."""

from __future__ import annotations

import base64
import io
import json

import pycurl


class HsmApi:
    def __init__(self, url: str, username: str, password: str) -> None:
        self.url = url
        self.auth = f"{username}:{password}"

    def request(
        self, method: str, path: str, body: object = None, content_type: str = "application/json"
    ) -> tuple[int, bytes]:
        curl = pycurl.Curl()
        out = io.BytesIO()
        curl.setopt(pycurl.URL, self.url + path)
        curl.setopt(pycurl.CUSTOMREQUEST, method)
        curl.setopt(pycurl.USERPWD, self.auth)
        curl.setopt(pycurl.SSL_VERIFYPEER, 0)
        curl.setopt(pycurl.SSL_VERIFYHOST, 0)
        curl.setopt(pycurl.PROXY, "")
        curl.setopt(pycurl.WRITEDATA, out)
        if body is not None:
            data = body if isinstance(body, bytes) else json.dumps(body).encode()
            curl.setopt(pycurl.POSTFIELDS, data)
            curl.setopt(pycurl.HTTPHEADER, [f"Content-Type: {content_type}"])
        try:
            curl.perform()
            return curl.getinfo(pycurl.RESPONSE_CODE), out.getvalue()
        finally:
            curl.close()

    def expect(self, status: int, method: str, path: str, body: object = None, **kw) -> bytes:
        got, data = self.request(method, path, body, **kw)
        if got != status:
            raise AssertionError(f"{method} {path}: {got} {data[:200]!r}")
        return data

    def generate(
        self,
        key_type: str,
        mechanisms: list[str],
        key_id: str,
        length: int | None = None,
        label: str | None = None,
    ) -> str:
        body: dict = {"type": key_type, "mechanisms": mechanisms, "id": key_id}
        if length:
            body["length"] = length
        if label:
            body["label"] = label
        self.expect(201, "POST", "/keys/generate", body)
        return key_id

    def key(self, key_id: str) -> dict:
        return json.loads(self.expect(200, "GET", f"/keys/{key_id}"))

    def public_pem(self, key_id: str) -> bytes:
        return self.expect(200, "GET", f"/keys/{key_id}/public.pem")

    def delete(self, key_id: str) -> None:
        self.request("DELETE", f"/keys/{key_id}")

    def sign(self, key_id: str, mode: str, message: bytes) -> bytes:
        body = {"mode": mode, "message": base64.b64encode(message).decode()}
        return base64.b64decode(
            json.loads(self.expect(200, "POST", f"/keys/{key_id}/sign", body))["signature"]
        )
