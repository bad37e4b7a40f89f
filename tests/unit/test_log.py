"""p11fast.log: where records go, what a line looks like, and that secrets never appear."""

import os
import socket
import subprocess
import sys

import pytest

from p11fast import config, log

PASSWORDS = ("op-Secret-1", "admin-Secret-2")
REPO = os.path.join(os.path.dirname(__file__), "..", "..")


@pytest.fixture(autouse=True)
def no_registered_secrets(monkeypatch):
    monkeypatch.setattr(log, "_secrets", set())


@pytest.fixture
def no_default_syslog(monkeypatch):
    monkeypatch.setattr(log, "DEFAULT_SOCKETS", ())


def make_config(**settings):
    slot = config.SlotConfig(
        label="S",
        operator=config.UserConfig(username="operator", password=PASSWORDS[0]),
        administrator=config.UserConfig(username="admin", password=PASSWORDS[1]),
        instances=(config.InstanceConfig(url="https://hsm"),),
    )
    return config.Config(slots=(slot,), **settings)


def test_log_file_receives_lines_with_tag_pid_and_level(tmp_path):
    path = tmp_path / "p11.log"
    logger = log.setup(make_config(log_file=str(path), log_level="Info", syslog_pid=42))
    logger.info("slot S ready")
    logger.close()
    (line,) = path.read_text().splitlines()
    assert line.endswith(" p11fast[42]: INFO slot S ready")


def test_records_below_the_level_are_dropped(tmp_path):
    path = tmp_path / "p11.log"
    logger = log.setup(make_config(log_file=str(path), log_level="Warn"))
    logger.info("not shown")
    logger.trace("not shown")
    logger.error("shown")
    logger.close()
    assert path.read_text().count("\n") == 1 and "ERROR shown" in path.read_text()


def test_trace_is_below_debug():
    assert log.TRACE < log.DEBUG < log.INFO < log.WARN < log.ERROR


def test_config_warnings_are_logged_at_setup(tmp_path):
    path = tmp_path / "p11.log"
    log.setup(make_config(log_file=str(path), warnings=("danger_insecure_cert is on",))).close()
    assert "WARN danger_insecure_cert is on" in path.read_text()


def test_default_is_stderr_when_no_syslog_socket_exists(capfd, no_default_syslog):
    log.setup(make_config()).error("to stderr")
    assert "p11fast[" in capfd.readouterr().err


def test_log_file_dash_means_stderr(capfd, no_default_syslog):
    log.setup(make_config(log_file="-")).error("dash")
    assert "ERROR dash" in capfd.readouterr().err


def unix_receiver(tmp_path):
    path = str(tmp_path / "syslog.sock")
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
    sock.bind(path)
    sock.settimeout(2)
    return path, sock


def test_syslog_socket_gets_rfc3164_line_with_facility_and_process(tmp_path):
    path, receiver = unix_receiver(tmp_path)
    logger = log.setup(
        make_config(
            syslog_socket=path, syslog_facility="local3", syslog_process="signer", syslog_pid=7
        )
    )
    logger.error("key missing")
    data = receiver.recv(4096).decode()
    assert data.startswith(f"<{19 * 8 + 3}>")  # local3, severity err
    assert data.endswith(" signer[7]: ERROR key missing")


def test_default_syslog_uses_the_first_existing_socket_and_stderr(tmp_path, monkeypatch, capfd):
    path, receiver = unix_receiver(tmp_path)
    monkeypatch.setattr(log, "DEFAULT_SOCKETS", (str(tmp_path / "absent"), path))
    log.setup(make_config()).error("both")
    assert receiver.recv(4096).decode().endswith("ERROR both")
    assert "ERROR both" in capfd.readouterr().err


def test_syslog_udp_carries_the_configured_hostname():
    receiver = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    receiver.bind(("127.0.0.1", 0))
    receiver.settimeout(2)
    logger = log.setup(
        make_config(syslog_udp=(receiver.getsockname(), None), syslog_hostname="hsm-client")
    )
    logger.warn("over udp")
    data = receiver.recv(4096).decode()
    assert " hsm-client p11fast[" in data and data.endswith("WARN over udp")


def test_syslog_tcp_lines_are_newline_framed():
    server = socket.create_server(("127.0.0.1", 0))
    logger = log.setup(make_config(syslog_tcp=server.getsockname()))
    conn, _ = server.accept()
    conn.settimeout(2)
    logger.error("one")
    logger.error("two")
    logger.close()
    received = b""
    while received.count(b"\n") < 2:
        received += conn.recv(4096)
    first, second = received.decode().splitlines()
    assert first.endswith("ERROR one") and second.endswith("ERROR two")


def test_configured_passwords_never_reach_a_record(tmp_path):
    path = tmp_path / "p11.log"
    logger = log.setup(make_config(log_file=str(path), log_level="Trace"))
    for password in PASSWORDS:
        logger.trace(f"login with {password}")
        logger.error(f"HTTP 401 for pin={password}!")
    logger.close()
    text = path.read_text()
    assert text.count("***") == 4
    assert not any(password in text for password in PASSWORDS)


def test_basic_authorization_credentials_are_redacted(tmp_path):
    import base64

    path = tmp_path / "p11.log"
    logger = log.setup(make_config(log_file=str(path), log_level="Trace"))
    token = base64.b64encode(f"operator:{PASSWORDS[0]}".encode()).decode()
    logger.trace(f"> Authorization: Basic {token}")
    logger.close()
    assert token not in path.read_text() and "Basic ***" in path.read_text()


def test_pin_registered_at_login_is_redacted():
    log.register_secret("1234-pin", username="operator")
    assert log.redact("C_Login pin 1234-pin") == "C_Login pin ***"


def test_stderr_logger_before_configuration(capfd):
    log.stderr_logger().error("no configuration file found")
    assert "ERROR no configuration file found" in capfd.readouterr().err


def test_a_child_forked_while_a_thread_is_blocked_writing_to_an_fd_stream_can_still_write():
    # The loader's own interpreter writes sys.stderr through FdStream: an io stream's buffer
    # lock, held by the blocked writer at fork, would stay held in the child for good.
    import os
    import threading
    import time

    read_end, write_end = os.pipe()
    stream = log.FdStream(write_end)
    threading.Thread(target=stream.write, args=("x" * 1_000_000,), daemon=True).start()
    time.sleep(0.2)  # the writer fills the pipe (nobody reads) and blocks in write()
    pid = os.fork()
    if pid == 0:
        os.set_blocking(write_end, False)  # a full pipe: the child's write fails, not waits
        stream.write("from the child\n")
        stream.flush()
        os._exit(0)
    deadline = time.monotonic() + 10
    while not os.waitpid(pid, os.WNOHANG)[0]:
        if time.monotonic() > deadline:
            os.kill(pid, 9)
            os.waitpid(pid, 0)
            pytest.fail("the child waited for a lock its parent's writer held")
        time.sleep(0.01)
    os.close(read_end)  # ends the parent's blocked writer (EPIPE, which FdStream swallows)
    os.close(write_end)


# What a process whose syslog is a unix socket (the default /dev/log) or UDP loads for it.
SYSLOG_IMPORTS = r"""
import sys
from p11fast import config, log
log.setup(config.Config(slots=(), syslog_socket=sys.argv[1])).warn("over unix")
log.setup(config.Config(slots=(), syslog_udp=(("127.0.0.1", int(sys.argv[2])), None))).warn("udp")
print("socket" in sys.modules)
"""


def test_syslog_over_unix_and_udp_sockets_does_without_the_socket_module(tmp_path):
    path, receiver = unix_receiver(tmp_path)
    udp = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    udp.bind(("127.0.0.1", 0))
    udp.settimeout(2)
    done = subprocess.run([sys.executable, "-S", "-c", SYSLOG_IMPORTS, path,
                           str(udp.getsockname()[1])], cwd=REPO, capture_output=True, text=True)
    assert done.returncode == 0, done.stderr
    assert done.stdout.split() == ["False"]
    assert receiver.recv(4096).decode().endswith("WARN over unix")
    assert udp.recv(4096).decode().endswith("WARN udp")
