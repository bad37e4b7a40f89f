"""The administrator's requests to the HSM: create, change and delete keys, certificates and
passphrases for one slot.

Every request goes with the administrator's credentials; a refusal becomes the typed
:mod:`p11fast.errors` exception of the one HTTP mapping (``from_http``). What to ask for is
decided by :mod:`p11fast.admin.templates`.
"""

from __future__ import annotations

from p11fast import der, errors
from p11fast.admin.templates import KeySpec
from p11fast.errors import AttributeValueInvalid, TemplateInconsistent, UserNotLoggedIn
from p11fast.keyid import ARCHIVE_PREFIX, MAX_LEN, SESSION_PREFIX
from p11fast.lean import parse_json, to_json


class Admin:
    """Administrator requests of one slot. ``request(method, path, body, admin)`` is the
    slot's transport (``make_request`` of the ABI)."""

    def __init__(self, request, slot_label: str, log, certificate_format: str = "PEM") -> None:
        self._request = request
        self.slot_label = slot_label
        self.log = log
        self.certificate_format = certificate_format  # the slot's, as nethsm-pkcs11 has it
        self.swept = False

    def call(self, method: str, path: str, body: bytes | None = None,
             content_type: str | None = None) -> tuple[int, bytes]:
        try:
            return self._request(method, path, body, True, content_type)
        except UserNotLoggedIn:
            raise UserNotLoggedIn(
                f"{method} {path} needs the administrator: log in as SO (CKU_SO) or set "
                "administrator.password in the configuration") from None

    def check(self, status: int, context: str, what: str, ok=(200, 201, 204)) -> None:
        if status not in ok:
            raise errors.from_http(status, context, what, self.slot_label)

    def create(self, spec: KeySpec, private: dict | None = None) -> None:
        """Generates (``private`` None) or imports the key ``spec`` describes."""
        method, path, body = spec.request(private)
        if not spec.chosen and self.key_type(spec.key_id) is not None:
            # Checked first, so that a 409 below can only come from this very request: the
            # transport retries a request whose answer was lost, and the HSM may have done it.
            raise AttributeValueInvalid(f"key ID {spec.key_id} is taken")
        status, _ = self.call(method, path, to_json(body))
        if status == 409 and self.key_type(spec.key_id) == spec.key_type:
            self.log.info(f"{spec.key_id}: created by an earlier attempt of this request")
            return
        self.check(status, errors.CREATE, f"{method} {path} ({spec.key_type} {spec.key_id})")
        mechanisms = ", ".join(spec.mechanisms)
        self.log.info(f"created {spec.key_type} key {spec.key_id} with {mechanisms}")

    def key_type(self, key_id: str) -> str | None:
        status, data = self.call("GET", "/keys/" + key_id)
        return parse_json(data).get("type") if status == 200 else None

    def store_certificate(self, key_id: str, cert: bytes, label: str | None = None) -> None:
        """Stores the certificate with its key. A certificate has its key's label on a NetHSM:
        ``label`` (the certificate's CKA_LABEL) becomes the key's, so that the object reads back
        as it was created and the name survives the process (Java KeyStore aliases)."""
        if self.certificate_format == "DER":
            body, content_type = cert, "application/octet-stream"
        else:
            body, content_type = der.der_to_pem(cert), "application/x-pem-file"
        path = f"/keys/{key_id}/cert"
        status, _ = self.call("PUT", path, body, content_type)
        if status == 404:
            raise TemplateInconsistent(
                f"no key {key_id} on the HSM: it stores a certificate only with its key (CKA_ID)")
        self.check(status, errors.CREATE, "PUT " + path)
        if label is not None:
            status, _ = self.call("PUT", f"/keys/{key_id}/label", to_json({"label": label}))
            if status in (404, 405):  # a NetHSM before version 5 has no key labels
                self.log.warn(f"certificate of {key_id} stored without its label {label!r}: "
                              "the HSM keeps no key labels")
                return
            self.check(status, errors.CREATE, f"PUT /keys/{key_id}/label")

    def delete_certificate(self, key_id: str) -> None:
        status, _ = self.call("DELETE", f"/keys/{key_id}/cert")
        self.check(status, errors.OBJECT, f"DELETE /keys/{key_id}/cert")

    def delete_key(self, key_id: str, archive: bool) -> None:
        """Deletes the key, or with ``archive`` moves it to a hidden ID an administrator can
        move back (``zzarchive<time>.<original ID>``, cut to 128 characters)."""
        if archive:
            import time

            new_id = f"{ARCHIVE_PREFIX}{int(time.time())}.{key_id}"[:MAX_LEN]
            self.move(key_id, new_id)
            self.log.info(f"archived key {key_id} as {new_id} (policy.key_invalidation)")
            return
        status, _ = self.call("DELETE", "/keys/" + key_id)
        if status == 404:
            # Gone already: an earlier attempt of this request whose answer was lost (the
            # transport retried it), or another client. Either way the effect asked for holds.
            self.log.info(f"key {key_id} was already deleted")
            return
        self.check(status, errors.OBJECT, "DELETE /keys/" + key_id)
        self.log.info(f"deleted key {key_id}")

    def move(self, key_id: str, new_id: str) -> None:
        status, _ = self.call("POST", f"/keys/{key_id}/move", to_json({"newId": new_id}))
        if status == 409:
            raise AttributeValueInvalid(f"key ID {new_id} is taken")
        self.check(status, errors.OBJECT, f"POST /keys/{key_id}/move")

    def set_label(self, key_id: str, label: str) -> None:
        status, _ = self.call("PUT", f"/keys/{key_id}/label", to_json({"label": label}))
        self.check(status, errors.OBJECT, f"PUT /keys/{key_id}/label")

    def set_passphrase(self, username: str, passphrase: str, request=None) -> None:
        """POST /users/{username}/passphrase; ``request`` overrides the transport (C_SetPIN
        sends the user's own credentials)."""
        path = f"/users/{username}/passphrase"
        body = to_json({"passphrase": passphrase})
        status, _ = (request or self.call)("POST", path, body)
        if status == 400:
            raise errors.PinInvalid(f"the HSM refused the new passphrase of {username}")
        self.check(status, errors.OBJECT, "POST " + path)
        self.log.info(f"changed the passphrase of {username}")

    def sweep(self, is_stale) -> None:
        """Deletes session keys that processes gone since left behind (killed before they
        could clean up); ``is_stale(key_id)`` decides. Once per slot and module lifetime."""
        self.swept = True
        status, data = self.call("GET", f"/keys/{SESSION_PREFIX}*")
        self.check(status, errors.TOKEN, f"GET /keys/{SESSION_PREFIX}*", ok=(200,))
        for item in parse_json(data):
            key_id = item.get("id", "")
            if is_stale(key_id):
                self.delete_key(key_id, archive=False)
