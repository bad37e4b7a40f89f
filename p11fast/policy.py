"""What the module allows: mechanisms, key import, session objects, key invalidation.

The `policy:` section of the configuration becomes a `PolicyConfig`; the ABI calls the
`check_*` functions before acting, and a refusal is a typed error whose message names the
policy setting, so the log line says why. The mechanism policy is checked by the ABI itself
(`policy_check_mechanism` in p11fast/abi/ops.pyx), without the GIL, on every C_*Init.
"""

from __future__ import annotations

from p11fast.errors import AttributeValueInvalid, TemplateInconsistent
from p11fast.lean import Record


class PolicyConfig(Record):
    """The `policy:` section. Private and secret key material is never exported: the HSM
    cannot export it, so there is no setting for it and `CKA_EXTRACTABLE` is always false."""

    # None = every mechanism p11fast implements (the HSM still enforces each key's own
    # mechanism list); otherwise only these names (of p11fast.mechanisms.NAMES).
    allowed_mechanisms: frozenset[str] | None = None
    # On by default, as Nitrokey's nethsm-pkcs11 imports with C_CreateObject (the
    # administrator's credentials are the gate); off for setups where every key must have been
    # generated inside the HSM.
    allow_key_import: bool = True
    # On by default: Java SunPKCS11, OpenSSL and most applications create session objects.
    allow_session_objects: bool = True
    # When on, C_DestroyObject archives a key under a hidden ID instead of deleting it.
    key_invalidation: bool = False


def check_key_import(policy: PolicyConfig) -> None:
    """Refuse C_CreateObject of private or secret key material unless import is allowed.

    CKR_TEMPLATE_INCONSISTENT: C_CreateObject's list in the standard has no policy code, and
    the template (a key with its value) conflicts with what the token accepts.
    """
    if not policy.allow_key_import:
        raise TemplateInconsistent("policy: key import is off (policy.allow_key_import: false)")


def check_session_object(policy: PolicyConfig) -> None:
    """Refuse an object with CKA_TOKEN=FALSE unless session objects are allowed.

    CKR_ATTRIBUTE_VALUE_INVALID: the one attribute value (CKA_TOKEN=FALSE) is what is refused.
    """
    if not policy.allow_session_objects:
        raise AttributeValueInvalid(
            "policy: session objects are off (policy.allow_session_objects: false)"
        )
