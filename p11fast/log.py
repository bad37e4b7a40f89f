"""The module's log: syslog (unix socket, UDP, TCP), a file or stderr, with secrets redacted.

Hand-rolled instead of the stdlib `logging` (20 ms to import on the C_Initialize path, and its
handlers take locks the fork handlers would have to know about). Each record is one
`write`/`send` call, so lines from concurrent threads never interleave. Syslog lines follow
RFC 3164, as glibc's syslog() writes them.

Every line passes through `redact` first: configured passwords, PINs handed to C_Login and
the HTTP Basic credentials made from them are replaced by `***`.
"""

from __future__ import annotations

import posix  # not os, which only re-exports it here and costs ~1 ms to import (p11fast.lean)
import time
from _stat import S_ISSOCK  # what the stat module re-exports

TRACE, DEBUG, INFO, WARN, ERROR = 5, 10, 20, 30, 40
LEVELS = {"Trace": TRACE, "Debug": DEBUG, "Info": INFO, "Warn": WARN, "Error": ERROR}
_LEVEL_NAMES = {value: name.upper() for name, value in LEVELS.items()}
_SEVERITY = {TRACE: 7, DEBUG: 7, INFO: 6, WARN: 4, ERROR: 3}  # syslog severities
FACILITY_CODES = {
    "kern": 0, "user": 1, "mail": 2, "daemon": 3, "auth": 4, "syslog": 5, "lpr": 6,
    "news": 7, "uucp": 8, "cron": 9, "authpriv": 10, "ftp": 11, "local0": 16, "local1": 17,
    "local2": 18, "local3": 19, "local4": 20, "local5": 21, "local6": 22, "local7": 23,
}  # fmt: skip
DEFAULT_SOCKETS = ("/dev/log", "/var/run/syslog", "/var/run/log")
TAG = "p11fast"
REDACTED = "***"

_secrets: set[str] = set()


def register_secret(secret: str, username: str | None = None) -> None:
    """Never log `secret`; with `username`, nor the Basic credential built from both."""
    if not secret:
        return
    _secrets.add(secret)
    if username is not None:
        # binascii, not base64: base64 imports re (~10 ms), on the way to the first signature
        from binascii import b2a_base64

        _secrets.add(b2a_base64(f"{username}:{secret}".encode(), newline=False).decode("ascii"))


def redact(text: str) -> str:
    """`text` with every registered secret replaced by `***` (longest first)."""
    for secret in sorted(_secrets, key=len, reverse=True):
        if secret in text:
            text = text.replace(secret, REDACTED)
    return text


class Logger:
    """Writes records at or above `level` to every sink."""

    def __init__(self, level: int, sinks: list) -> None:
        self.level = level
        self.sinks = sinks
        self.emitted = 0  # records written: a C_Initialize that wrote none can be replayed silently

    def enabled(self, level: int) -> bool:
        return level >= self.level

    def log(self, level: int, message: str) -> None:
        if level < self.level:
            return
        self.emitted += 1
        message = redact(message)
        for sink in self.sinks:
            sink.emit(level, message)

    def trace(self, message: str) -> None:
        self.log(TRACE, message)

    def debug(self, message: str) -> None:
        self.log(DEBUG, message)

    def info(self, message: str) -> None:
        self.log(INFO, message)

    def warn(self, message: str) -> None:
        self.log(WARN, message)

    def error(self, message: str) -> None:
        self.log(ERROR, message)

    def close(self) -> None:
        for sink in self.sinks:
            sink.close()


class StreamSink:
    """A file opened for appending, or stderr: `<time> p11fast[pid]: LEVEL message`."""

    def __init__(self, fd: int, pid: int, owned: bool) -> None:
        self.fd = fd
        self.pid = pid
        self.owned = owned

    @classmethod
    def open(cls, path: str, pid: int) -> StreamSink:
        if path == "-":
            return cls(2, pid, owned=False)
        flags = posix.O_WRONLY | posix.O_APPEND | posix.O_CREAT | posix.O_CLOEXEC
        return cls(posix.open(path, flags, 0o600), pid, owned=True)

    def emit(self, level: int, message: str) -> None:
        fd = self.fd
        if fd < 0:
            return  # closed: a call racing C_Finalize must not write to a reused descriptor
        stamp = time.strftime("%Y-%m-%dT%H:%M:%S%z")
        line = f"{stamp} {TAG}[{self.pid}]: {_LEVEL_NAMES[level]} {message}\n"
        try:
            posix.write(fd, line.encode("utf-8", "replace"))
        except OSError:
            pass  # a full disk or closed stderr must not fail the PKCS#11 call

    def close(self) -> None:
        fd, self.fd = self.fd, -1
        if self.owned and fd >= 0:
            posix.close(fd)


class SyslogSink:
    """RFC 3164 lines to a unix socket, UDP or TCP (newline-framed, RFC 6587)."""

    def __init__(self, connect, facility: int, process: str, pid: int, host: str | None):
        self._connect = connect  # () -> (socket, stream: bool); called again after a failure
        self.facility = facility
        self.process = process
        self.pid = pid
        self.host = host  # only remote receivers get a hostname, as glibc does locally
        self.sock, self.stream = connect()
        self.closed = False

    def format(self, level: int, message: str) -> bytes:
        pri = self.facility * 8 + _SEVERITY[level]
        stamp = time.strftime("%b %d %H:%M:%S")
        host = f" {self.host}" if self.host else ""
        line = f"<{pri}>{stamp}{host} {self.process}[{self.pid}]: {_LEVEL_NAMES[level]} {message}"
        return (line + "\n" if self.stream else line).encode("utf-8", "replace")

    def emit(self, level: int, message: str) -> None:
        data = self.format(level, message)
        for _attempt in range(2):  # once more on a fresh connection (syslogd restarted)
            if self.closed:
                return  # a call racing C_Finalize must not open a new connection
            try:
                self.sock.sendall(data)
                return
            except OSError:
                self.sock.close()
                try:
                    self.sock, self.stream = self._connect()
                except OSError:
                    return
                if self.closed:  # closed while connecting
                    self.sock.close()
                    return

    def close(self) -> None:
        self.closed = True
        self.sock.close()


# The unix and UDP sockets come from _socket, which the socket module wraps: importing socket
# imports enum, ~40M instructions, paid in C_Initialize by every process that logs to syslog
# (/dev/log is the default). They only connect, send and close, which _socket's sockets do
# themselves. TCP keeps socket.create_connection (its resolution and fallback over addresses).


def _unix_connector(path: str):
    def connect():
        import _socket

        for kind, stream in ((_socket.SOCK_DGRAM, False), (_socket.SOCK_STREAM, True)):
            sock = _socket.socket(_socket.AF_UNIX, kind)
            try:
                sock.connect(path)
                return sock, stream
            except OSError:
                sock.close()
        raise OSError(f"cannot connect to syslog socket {path}")

    return connect


def _udp_connector(to_addr: tuple[str, int], from_addr: tuple[str, int] | None):
    def connect():
        import _socket

        family = _socket.getaddrinfo(*to_addr, 0, _socket.SOCK_DGRAM)[0][0]
        sock = _socket.socket(family, _socket.SOCK_DGRAM)
        if from_addr:
            sock.bind(from_addr)
        sock.connect(to_addr)
        return sock, False

    return connect


def _tcp_connector(address: tuple[str, int]):
    def connect():
        import socket

        return socket.create_connection(address, timeout=5), True

    return connect


def setup(config) -> Logger:
    """The logger `config` describes; logs the config's warnings through it.

    Default (no syslog target, no log_file): syslog on the first existing default socket and
    stderr, as Nitrokey's module does. A configured syslog target or log_file replaces the
    default on its side only.
    """
    pid = config.syslog_pid if config.syslog_pid is not None else posix.getpid()
    for slot in config.slots:
        for user in (slot.operator, slot.administrator):
            if user and user.password:
                register_secret(user.password, user.username)
    sinks: list = []
    problems: list[str] = []
    connect = _syslog_connector(config)
    if connect is not None:
        process = config.syslog_process or TAG
        remote = config.syslog_udp is not None or config.syslog_tcp is not None
        host = (config.syslog_hostname or _hostname()) if remote else None
        try:
            sinks.append(SyslogSink(connect, FACILITY_CODES[config.syslog_facility], process,
                                    pid, host))  # fmt: skip
        except OSError as exc:
            problems.append(f"syslog unavailable: {exc}")
    if config.log_file is not None or not _syslog_configured(config):
        try:
            sinks.append(StreamSink.open(config.log_file or "-", pid))
        except OSError as exc:
            sinks.append(StreamSink(2, pid, owned=False))
            problems.append(f"cannot open log_file {config.log_file}: {exc.strerror}")
    logger = Logger(LEVELS[config.log_level], sinks)
    for text in problems + list(config.warnings):
        logger.warn(text)
    return logger


def _syslog_configured(config) -> bool:
    return bool(config.syslog_socket or config.syslog_udp or config.syslog_tcp)


def _syslog_connector(config):
    if config.syslog_socket:
        return _unix_connector(config.syslog_socket)
    if config.syslog_udp:
        return _udp_connector(*config.syslog_udp)
    if config.syslog_tcp:
        return _tcp_connector(config.syslog_tcp)
    if config.log_file is not None:
        return None
    for path in DEFAULT_SOCKETS:
        if _is_socket(path):
            return _unix_connector(path)
    return None


def _is_socket(path: str) -> bool:
    try:
        return S_ISSOCK(posix.stat(path).st_mode)
    except OSError:
        return False


def _hostname() -> str:
    return posix.uname().nodename


class FdStream:
    """A text stream writing each string with one `os.write` loop, under no lock.

    sys.stdout and sys.stderr of the interpreter the loader starts in a host without Python.
    An io stream's buffer has a lock that a writing thread holds while the GIL is released for
    the write; a fork() at that moment leaves it held in the child for good (CPython resets no
    io lock after fork), and the child's next line there waits forever.
    """

    def __init__(self, fd: int) -> None:
        self.fd = fd

    def write(self, text: str) -> int:
        data = text.encode("utf-8", "backslashreplace")
        try:
            while data:
                data = data[posix.write(self.fd, data) :]
        except OSError:
            pass  # as StreamSink: a closed stream must not fail the caller
        return len(text)

    def flush(self) -> None:
        pass

    def fileno(self) -> int:
        return self.fd

    def isatty(self) -> bool:
        return posix.isatty(self.fd)

    def writable(self) -> bool:
        return True


def own_stdio() -> None:
    """The loader's own interpreter: sys.stdout and sys.stderr become FdStreams."""
    import sys

    sys.stdout = FdStream(1)
    sys.stderr = FdStream(2)


def stderr_logger(level: int = WARN) -> Logger:
    """What to log to before a configuration is loaded (and when it cannot be)."""
    return Logger(level, [StreamSink(2, posix.getpid(), owned=False)])
