"""A PyKCS11 host for test_side_effects.py: each step prints `step=<name> rv=<CKR>`
(0 = CKR_OK). argv: module path, PIN, step names to run in order."""

import sys

import PyKCS11
from PyKCS11 import LowLevel as L

lib = PyKCS11.PyKCS11Lib()
lib.load(sys.argv[1])
slot = lib.getSlotList(tokenPresent=True)[0]
session = lib.openSession(slot, PyKCS11.CKF_SERIAL_SESSION | PyKCS11.CKF_RW_SESSION)
session.login(sys.argv[2])

AES = [
    (L.CKA_CLASS, L.CKO_SECRET_KEY), (L.CKA_KEY_TYPE, L.CKK_AES), (L.CKA_TOKEN, True),
    (L.CKA_ENCRYPT, True), (L.CKA_DECRYPT, True),
]  # fmt: skip
STEPS = {
    # A label that is not a valid NetHSM key ID and no CKA_ID: the module picks the ID.
    "generate-chosen-id": lambda: session.generateKey(
        AES + [(L.CKA_VALUE_LEN, 32), (L.CKA_LABEL, "reliab chosen")]
    ),
    "generate-given-id": lambda: session.generateKey(
        AES + [(L.CKA_VALUE_LEN, 32), (L.CKA_ID, b"reliabgiven")]
    ),
    "import": lambda: session.createObject(
        AES + [(L.CKA_ID, b"reliabimport"), (L.CKA_VALUE, bytes(range(32)))]
    ),
    "destroy": lambda: session.destroyObject(
        session.findObjects([(L.CKA_CLASS, L.CKO_SECRET_KEY), (L.CKA_ID, b"reliabgiven")])[0]
    ),
}

for step in sys.argv[3:]:
    try:
        STEPS[step]()
        rv = 0
    except PyKCS11.PyKCS11Error as exc:
        rv = exc.value
    print(f"step={step} rv={rv}", flush=True)
session.logout()
session.closeSession()
