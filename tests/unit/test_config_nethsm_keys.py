"""Every key nethsm-pkcs11 2.x reads from p11nethsm.conf is accepted here with the same meaning:
one case per key, written as Nitrokey's example file writes it. The keys are the fields of its
config structs (`pkcs11/config_file/src/lib.rs`: P11Config, SlotConfig, InstanceConfig,
UserConfig, RetryConfig, TcpKeepaliveConfig, SyslogUdp), plus `enable_set_attribute_value`,
which 2.0 removed and p11fast keeps."""

from __future__ import annotations

import pytest

from p11fast import config

FINGERPRINT = "31:92:8E:A4:5E:16:5C:A7:33:44:E8:E9:8E:64:C4:AE:7B:2A:57:E5:77:43:49:F3:69:C9:8F:C4:2F:3A:3B:6E"  # noqa: E501


def text(top: str = "", slot: str = "", instance: str = "", operator: str = "") -> str:
    """A file with one slot; the fragments go to the top level, the slot, its instance and its
    operator (already indented as in Nitrokey's example)."""
    return (
        f"{top}slots:\n  - label: LocalHSM\n    operator:\n      username: operator\n{operator}"
        f"    instances:\n      - url: https://keyfender:8443/api/v1\n{instance}{slot}"
    )


def slot0(cfg: config.Config) -> config.SlotConfig:
    return cfg.slots[0]


CASES = {
    # P11Config
    "syslog_socket": (text(top="syslog_socket: /var/nethsm/log\n"),
                      lambda c: c.syslog_socket == "/var/nethsm/log"),
    "syslog_udp": (text(top="syslog_udp:\n  to_addr: 127.0.0.1:514\n  from_addr: 127.0.0.1:4789\n"),
                   lambda c: c.syslog_udp == (("127.0.0.1", 514), ("127.0.0.1", 4789))),
    "syslog_tcp": (text(top="syslog_tcp: 127.0.0.1:601\n"),
                   lambda c: c.syslog_tcp == ("127.0.0.1", 601)),
    "syslog_facility": (text(top='syslog_facility: "local3"\n'),
                        lambda c: c.syslog_facility == "local3"),
    "syslog_hostname": (text(top='syslog_hostname: "localhsm-pkcs11"\n'),
                        lambda c: c.syslog_hostname == "localhsm-pkcs11"),
    "syslog_process": (text(top='syslog_process: "NetHSM Pkcs11"\n'),
                       lambda c: c.syslog_process == "NetHSM Pkcs11"),
    "syslog_pid": (text(top="syslog_pid: 0\n"), lambda c: c.syslog_pid == 0),
    "log_file": (text(top="log_file: /tmp/p11nethsm.log\n"),
                 lambda c: c.log_file == "/tmp/p11nethsm.log"),
    "log_level": (text(top="log_level: Trace\n"), lambda c: c.log_level == "Trace"),
    "slots": (text(), lambda c: len(c.slots) == 1),
    "disable_threads": (text(top="disable_threads: true\n"), lambda c: c.disable_threads),
    "disable_thread_pool": (text(top="disable_thread_pool: true\n"),
                            lambda c: c.disable_thread_pool and not c.disable_threads),
    "enable_set_attribute_value": (text(top="enable_set_attribute_value: true\n"),
                                   lambda c: c.enable_set_attribute_value),
    # SlotConfig
    "label": (text(), lambda c: slot0(c).label == "LocalHSM"),
    "description": (text(slot="    description: Local HSM (docker)\n"),
                    lambda c: slot0(c).description == "Local HSM (docker)"),
    "operator": (text(), lambda c: slot0(c).operator == config.UserConfig(username="operator")),
    "administrator": (text(slot="    administrator:\n      username: admin\n"),
                      lambda c: slot0(c).administrator == config.UserConfig(username="admin")),
    "instances": (text(), lambda c: len(slot0(c).instances) == 1),
    "retries": (text(slot="    retries:\n      count: 3\n      delay_seconds: 1\n"),
                lambda c: slot0(c).retries == config.RetryConfig(count=3, delay_seconds=1)),
    "tcp_keepalive": (
        text(slot="    tcp_keepalive:\n      time_seconds: 600\n      interval_seconds: 60\n"
                  "      retries: 3\n"),
        lambda c: slot0(c).tcp_keepalive
        == config.KeepaliveConfig(time_seconds=600, interval_seconds=60, retries=3),
    ),
    "timeout_seconds": (text(slot="    timeout_seconds: 10\n"),
                        lambda c: slot0(c).timeout_seconds == 10),
    "connections_max_idle_duration": (text(slot="    connections_max_idle_duration: 1800\n"),
                                      lambda c: slot0(c).connections_max_idle_duration == 1800),
    "certificate_format": (text(slot="    certificate_format: DER\n"),
                           lambda c: slot0(c).certificate_format == "DER"),
    # InstanceConfig
    "url": (text(), lambda c: slot0(c).instances[0].url == "https://keyfender:8443/api/v1"),
    "danger_insecure_cert": (text(instance="        danger_insecure_cert: true\n"),
                             lambda c: slot0(c).instances[0].danger_insecure_cert),
    "sha256_fingerprints": (
        text(instance=f'        sha256_fingerprints:\n          - "{FINGERPRINT}"\n'),
        lambda c: slot0(c).instances[0].sha256_fingerprints
        == (bytes.fromhex(FINGERPRINT.replace(":", "")),),
    ),
    "max_idle_connections": (text(instance="        max_idle_connections: 10\n"),
                             lambda c: slot0(c).instances[0].max_idle_connections == 10),
    # UserConfig
    "username": (text(), lambda c: slot0(c).operator.username == "operator"),
    "password": (text(operator='      password: "localpass"\n'),
                 lambda c: slot0(c).operator.password == "localpass"),
}  # fmt: skip


@pytest.mark.parametrize("key", sorted(CASES))
def test_nethsm_pkcs11_key_is_read_with_its_meaning(tmp_path, key):
    source, meaning = CASES[key]
    path = tmp_path / "p11nethsm.conf"
    path.write_text(source)
    path.chmod(0o600)
    assert meaning(config.load(str(path)))


def test_certificate_format_defaults_to_pem_and_takes_only_pem_or_der(tmp_path):
    path = tmp_path / "p11nethsm.conf"
    path.write_text(text())
    assert config.load(str(path)).slots[0].certificate_format == "PEM"
    path.write_text(text(slot="    certificate_format: CRT\n"))
    with pytest.raises(config.ConfigError, match="certificate_format: 'CRT' is not one of PEM"):
        config.load(str(path))


def test_max_idle_connections_of_zero_is_accepted_as_nethsm_pkcs11_does(tmp_path):
    path = tmp_path / "p11nethsm.conf"
    path.write_text(text(instance="        max_idle_connections: 0\n"))
    assert config.load(str(path)).slots[0].instances[0].max_idle_connections == 0
