"""A Python host that forks after using the module (gunicorn --preload, multiprocessing), for
test_fork.py. It prints one JSON line of counts.

argv: module path, PIN, key ID, client, start, forks, loggers
  client   ctypes | pkcs11 (python-pkcs11) | pykcs11: how the host calls the module
  start    fork (os.fork) | mp (multiprocessing, fork start method)
  loggers  "<n>": n threads sign and have a C_SignInit refused (a log line each) through
           every fork; "fail<n>": the parent never initialises, n threads call C_Initialize
           with a configuration that fails (a log line each) through every fork

Each child first uses what it inherited: the session must answer
CKR_CRYPTOKI_NOT_INITIALIZED (with failing loggers: C_Initialize with the bad configuration
must fail, not hang). Then it initialises again the way its client does, opens a session and
signs. Its exit code says which step failed (0: all went as expected).
"""

from __future__ import annotations

import ctypes
import json
import multiprocessing
import os
import sys
import threading
import time

MODULE, PIN, KEY_ID, CLIENT, START = sys.argv[1:6]
FORKS = int(sys.argv[6])
LOGGERS = sys.argv[7]
BAD_CONFIG = b"/nonexistent/p11fast-fork-test.conf"
CHILD_TIMEOUT = 20.0
LOGGER_PAUSE = 0.0005

CKR_OK = 0
CKR_CRYPTOKI_NOT_INITIALIZED = 0x190
CKM_ECDSA = 0x1041
CKM_SHA256_RSA_PKCS = 0x40
CKO_PRIVATE_KEY = 3
CKA_CLASS = 0
CKA_ID = 0x102
CKU_USER = 1
CKF_RW_SERIAL = 0x6
DIGEST = b"\x5a" * 32


class Raw:
    """The module through ctypes, by its exported C_* names (the GIL is released per call)."""

    class Attribute(ctypes.Structure):
        _fields_ = [("type", ctypes.c_ulong), ("pValue", ctypes.c_void_p),
                    ("ulValueLen", ctypes.c_ulong)]  # fmt: skip

    class Mechanism(ctypes.Structure):
        _fields_ = [("mechanism", ctypes.c_ulong), ("pParameter", ctypes.c_void_p),
                    ("ulParameterLen", ctypes.c_ulong)]  # fmt: skip

    class InitArgs(ctypes.Structure):
        _fields_ = [("create", ctypes.c_void_p), ("destroy", ctypes.c_void_p),
                    ("lock", ctypes.c_void_p), ("unlock", ctypes.c_void_p),
                    ("flags", ctypes.c_ulong), ("pReserved", ctypes.c_char_p)]  # fmt: skip

    def __init__(self) -> None:
        self.lib = ctypes.CDLL(MODULE)
        for name in ("C_Initialize", "C_Finalize", "C_OpenSession", "C_CloseSession", "C_Login",
                     "C_FindObjectsInit", "C_FindObjects", "C_FindObjectsFinal", "C_SignInit",
                     "C_Sign"):  # fmt: skip
            getattr(self.lib, name).restype = ctypes.c_ulong

    def initialize(self, config: bytes | None = None) -> int:
        args = self.InitArgs(flags=2, pReserved=config)  # CKF_OS_LOCKING_OK
        return self.lib.C_Initialize(ctypes.byref(args))

    def session(self) -> tuple[int, int]:
        """A logged-in session and the key's handle; raises on any failure."""
        handle = ctypes.c_ulong()
        rv = self.lib.C_OpenSession(ctypes.c_ulong(0), ctypes.c_ulong(CKF_RW_SERIAL), None, None,
                                    ctypes.byref(handle))  # fmt: skip
        if rv == CKR_OK:
            rv = self.lib.C_Login(handle, ctypes.c_ulong(CKU_USER), PIN.encode(),
                                  ctypes.c_ulong(len(PIN)))  # fmt: skip
        if rv not in (CKR_OK, 0x100):  # CKR_USER_ALREADY_LOGGED_IN
            raise RuntimeError(f"session: 0x{rv:x}")
        cls = ctypes.c_ulong(CKO_PRIVATE_KEY)
        key_id = ctypes.create_string_buffer(KEY_ID.encode(), len(KEY_ID))
        template = (self.Attribute * 2)(
            self.Attribute(CKA_CLASS, ctypes.cast(ctypes.byref(cls), ctypes.c_void_p),
                           ctypes.sizeof(cls)),
            self.Attribute(CKA_ID, ctypes.cast(key_id, ctypes.c_void_p), len(KEY_ID)),
        )  # fmt: skip
        key, found = ctypes.c_ulong(), ctypes.c_ulong()
        self.lib.C_FindObjectsInit(handle, template, ctypes.c_ulong(2))
        self.lib.C_FindObjects(handle, ctypes.byref(key), ctypes.c_ulong(1), ctypes.byref(found))
        self.lib.C_FindObjectsFinal(handle)
        if found.value != 1:
            raise RuntimeError("key not found")
        return handle.value, key.value

    def sign(self, session: int, key: int, mechanism: int = CKM_ECDSA) -> int:
        mech = self.Mechanism(mechanism, None, 0)
        rv = self.lib.C_SignInit(ctypes.c_ulong(session), ctypes.byref(mech), ctypes.c_ulong(key))
        if rv != CKR_OK:
            return rv
        sig, length = ctypes.create_string_buffer(256), ctypes.c_ulong(256)
        return self.lib.C_Sign(ctypes.c_ulong(session), DIGEST, ctypes.c_ulong(len(DIGEST)),
                               sig, ctypes.byref(length))  # fmt: skip


class CtypesClient:
    def __init__(self, raw: Raw) -> None:
        self.raw = raw

    def start(self) -> None:
        rv = self.raw.initialize()
        if rv != CKR_OK:
            raise RuntimeError(f"C_Initialize: 0x{rv:x}")
        self.handles = self.raw.session()

    def sign(self) -> int:
        return self.raw.sign(*self.handles)

    def again(self) -> None:
        self.start()


class Pkcs11Client:
    """python-pkcs11: its lib.reinitialize() (C_Finalize, C_Initialize) in the child."""

    def start(self) -> None:
        import pkcs11

        self.lib = pkcs11.lib(MODULE)
        self.token = self.lib.get_slots(token_present=True)[0].get_token()
        self.open()

    def open(self) -> None:
        from pkcs11 import ObjectClass

        self.session = self.token.open(user_pin=PIN)
        self.key = self.session.get_key(object_class=ObjectClass.PRIVATE_KEY, id=KEY_ID.encode())

    def sign(self) -> int:
        from pkcs11 import Mechanism, PKCS11Error

        try:
            return CKR_OK if len(self.key.sign(DIGEST, mechanism=Mechanism.ECDSA)) == 64 else -1
        except PKCS11Error as exc:
            # python-pkcs11 has no exception of its own for this code, only its message
            return CKR_CRYPTOKI_NOT_INITIALIZED if "not initialized" in str(exc) else -2

    def again(self) -> None:
        self.lib.reinitialize()
        self.open()


class PyKcs11Client:
    """PyKCS11: its low-level C_Finalize and C_Initialize in the child."""

    def start(self) -> None:
        import PyKCS11

        self.lib = PyKCS11.PyKCS11Lib()
        self.lib.load(MODULE)
        self.open()

    def open(self) -> None:
        import PyKCS11

        slot = self.lib.getSlotList(tokenPresent=True)[0]
        self.session = self.lib.openSession(
            slot, PyKCS11.CKF_SERIAL_SESSION | PyKCS11.CKF_RW_SESSION
        )
        self.session.login(PIN)
        self.key = self.session.findObjects(
            [(PyKCS11.CKA_CLASS, PyKCS11.CKO_PRIVATE_KEY), (PyKCS11.CKA_ID, KEY_ID.encode())]
        )[0]

    def sign(self) -> int:
        import PyKCS11

        try:
            sig = self.session.sign(self.key, DIGEST, PyKCS11.Mechanism(PyKCS11.CKM_ECDSA, None))
            return CKR_OK if len(sig) == 64 else -1
        except PyKCS11.PyKCS11Error as exc:
            return exc.value

    def again(self) -> None:
        assert self.lib.lib.C_Finalize() == CKR_OK
        assert self.lib.lib.C_Initialize() == CKR_OK
        self.open()


CLIENTS = {"ctypes": lambda raw: CtypesClient(raw), "pkcs11": lambda raw: Pkcs11Client(),
           "pykcs11": lambda raw: PyKcs11Client()}  # fmt: skip


def child(raw: Raw, client, failing: bool) -> int:
    """The child's steps; the exit code names the first one that went wrong."""
    if failing:
        if raw.initialize(BAD_CONFIG) == CKR_OK:
            return 30
        client.start()
    else:
        rv = client.sign()
        if rv != CKR_CRYPTOKI_NOT_INITIALIZED:
            print(f"inherited session: {rv:#x}", file=sys.stderr, flush=True)
            return 20
        client.again()
    return 0 if client.sign() == CKR_OK else 21


def run_child(raw: Raw, client, failing: bool) -> None:
    try:
        code = child(raw, client, failing)
    except BaseException as exc:  # noqa: BLE001 - any failure is the child's exit code
        print(f"child: {exc!r}", file=sys.stderr, flush=True)
        code = 22
    os._exit(code)


def wait(pid: int) -> int:
    """The child's exit status, killing it after CHILD_TIMEOUT: a hang is a failure."""
    deadline = time.monotonic() + CHILD_TIMEOUT
    while time.monotonic() < deadline:
        done, status = os.waitpid(pid, os.WNOHANG)
        if done:
            return status
        time.sleep(0.002)
    os.kill(pid, 9)
    return os.waitpid(pid, 0)[1]


def logger(raw: Raw, failing: bool, stop: threading.Event, counts: dict) -> None:
    """Writes log lines until `stop`: often enough that forks land in the middle of one,
    without taking the CPU the children need."""
    if failing:
        while not stop.wait(LOGGER_PAUSE):
            counts["failed_inits"] += raw.initialize(BAD_CONFIG) != CKR_OK
        return
    session, key = raw.session()
    while not stop.wait(LOGGER_PAUSE):
        counts["signed"] += raw.sign(session, key) == CKR_OK
        counts["refused"] += raw.sign(session, key, CKM_SHA256_RSA_PKCS) != CKR_OK


def main() -> None:
    raw = Raw()
    client = CLIENTS[CLIENT](raw)
    failing = LOGGERS.startswith("fail")
    if not failing:
        client.start()
        assert client.sign() == CKR_OK
    stop = threading.Event()
    counts = {"signed": 0, "refused": 0, "failed_inits": 0}
    threads = [threading.Thread(target=logger, args=(raw, failing, stop, counts))
               for _ in range(int(LOGGERS.removeprefix("fail")))]  # fmt: skip
    for t in threads:
        t.start()
    time.sleep(0.1 if threads else 0)  # they log before the first fork
    statuses = []
    context = multiprocessing.get_context("fork")
    for _ in range(FORKS):
        if START == "mp":
            process = context.Process(target=run_child, args=(raw, client, failing))
            process.start()
            process.join(CHILD_TIMEOUT)
            if process.exitcode is None:
                process.kill()
                process.join()
            statuses.append(process.exitcode)
        else:
            pid = os.fork()
            if pid == 0:
                run_child(raw, client, failing)
            status = wait(pid)
            statuses.append(os.waitstatus_to_exitcode(status))
    parent_ok = failing or client.sign() == CKR_OK
    stop.set()
    for t in threads:
        t.join()
    print(json.dumps({"children_ok": statuses.count(0), "statuses": sorted(set(statuses)),
                      "parent_ok": parent_ok, **counts}), flush=True)  # fmt: skip


main()
