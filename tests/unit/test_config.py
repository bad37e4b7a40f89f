"""p11fast.config: what a configuration file means, and how a wrong one is reported."""

import os
import sys

import pytest

from p11fast import config
from p11fast.errors import ConfigError

FINGERPRINT = "31:92:8E:A4:5E:16:5C:A7:33:44:E8:E9:8E:64:C4:AE:7B:2A:57:E5:77:43:49:F3:69:C9:8F:C4:2F:3A:3B:6E"  # noqa: E501

MINIMAL = """\
slots:
  - label: LocalHSM
    operator:
      username: operator
    instances:
      - url: https://hsm.example:8443/api/v1
"""


@pytest.fixture(autouse=True)
def isolated_environment(monkeypatch, tmp_path):
    """No test sees the machine's config files or the caller's environment."""
    for name in (config.ENV_CONFIG_FILE, config.ENV_NITROKEY_CONFIG_FILE):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setattr(
        config,
        "SEARCH_PATH",
        (str(tmp_path / "etc/p11fast.conf"), "~/.config/p11fast/p11fast.conf"),
    )
    monkeypatch.setattr(config, "NITROKEY_SEARCH_PATH", ("~/.config/nitrokey/p11nethsm.conf",))
    monkeypatch.setenv("HOME", str(tmp_path / "home"))


@pytest.fixture(autouse=True, params=["yamlnodes", "pyyaml"])
def composer(request, monkeypatch):
    """Every test runs with both composers: p11fast._yamlnodes, and PyYAML when it is absent."""
    if request.param == "pyyaml":
        monkeypatch.setitem(sys.modules, "p11fast._yamlnodes", None)  # import -> ImportError


def write(path, text, mode=0o600):
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text)
    path.chmod(mode)
    return str(path)


def load_text(tmp_path, text, mode=0o600):
    return config.load(write(tmp_path / "p11fast.conf", text, mode))


def error_of(tmp_path, text):
    with pytest.raises(ConfigError) as info:
        load_text(tmp_path, text)
    return str(info.value)


NITROKEY_EXAMPLE = f"""\
enable_set_attribute_value: false
log_level: Debug
syslog_socket: /var/nethsm/log
syslog_facility: "user"
slots:
  - label: LocalHSM
    description: Local HSM (docker)
    operator:
      username: "operator"
      password: "localpass"
    administrator:
      username: "admin"
    instances:
      - url: "https://keyfender:8443/api/v1"
        max_idle_connections: 10
        sha256_fingerprints:
          - "{FINGERPRINT}"
    retries:
      count: 3
      delay_seconds: 1
    tcp_keepalive:
      time_seconds: 600
      interval_seconds: 60
      retries: 3
    connections_max_idle_duration: 1800
    timeout_seconds: 10
"""


def test_nitrokey_documented_example_loads_unchanged(tmp_path):
    cfg = load_text(tmp_path, NITROKEY_EXAMPLE)
    slot = cfg.slots[0]
    assert (cfg.log_level, cfg.syslog_socket, cfg.syslog_facility) == (
        "Debug",
        "/var/nethsm/log",
        "user",
    )
    assert slot.label == "LocalHSM" and slot.description == "Local HSM (docker)"
    assert slot.operator == config.UserConfig(username="operator", password="localpass")
    assert slot.administrator == config.UserConfig(username="admin")
    assert slot.retries == config.RetryConfig(count=3, delay_seconds=1)
    assert slot.tcp_keepalive == config.KeepaliveConfig(
        time_seconds=600, interval_seconds=60, retries=3
    )
    assert (slot.connections_max_idle_duration, slot.timeout_seconds) == (1800, 10)
    instance = slot.instances[0]
    assert instance.url == "https://keyfender:8443/api/v1"
    assert instance.max_idle_connections == 10
    assert instance.sha256_fingerprints == (bytes.fromhex(FINGERPRINT.replace(":", "")),)


def test_defaults_of_a_minimal_file(tmp_path):
    cfg = load_text(tmp_path, MINIMAL)
    slot = cfg.slots[0]
    assert cfg.log_level == "Warn" and cfg.log_file is None and cfg.syslog_facility == "user"
    assert not cfg.enable_set_attribute_value and not cfg.disable_threads
    assert slot.retries == config.RetryConfig(count=0, delay_seconds=0)
    assert slot.timeout_seconds is None and slot.tcp_keepalive is None
    assert slot.instances[0].max_idle_connections is None
    assert not slot.instances[0].danger_insecure_cert
    assert cfg.warnings == ()


def test_records_are_immutable(tmp_path):
    cfg = load_text(tmp_path, MINIMAL)
    with pytest.raises(AttributeError):
        cfg.slots[0].label = "other"


@pytest.mark.parametrize("given, stored", [("trace", "Trace"), ("WARN", "Warn"), ("Info", "Info")])
def test_log_level_is_case_insensitive(tmp_path, given, stored):
    assert load_text(tmp_path, f"log_level: {given}\n" + MINIMAL).log_level == stored


def test_env_password_is_read_from_the_environment(tmp_path, monkeypatch):
    monkeypatch.setenv("HSM_PASS", "s3cret")
    cfg = load_text(
        tmp_path,
        MINIMAL.replace("username: operator", "username: operator\n      password: env:HSM_PASS"),
    )
    assert cfg.slots[0].operator.password == "s3cret"


def test_missing_env_password_names_the_variable(tmp_path):
    text = MINIMAL.replace(
        "username: operator", "username: operator\n      password: env:P11FAST_TEST_UNSET"
    )
    assert error_of(tmp_path, text).endswith(
        ":5: slots[0].operator.password: environment variable P11FAST_TEST_UNSET is not set"
    )


def test_empty_password_means_the_pin_is_the_password(tmp_path):
    text = MINIMAL.replace("username: operator", 'username: operator\n      password: ""')
    assert load_text(tmp_path, text).slots[0].operator.password is None


def test_unquoted_numeric_password_is_kept_as_written(tmp_path):
    text = MINIMAL.replace("username: operator", "username: operator\n      password: 0123")
    assert load_text(tmp_path, text).slots[0].operator.password == "0123"


def test_user_repr_never_shows_the_password():
    user = config.UserConfig(username="op", password="hunter2")
    assert "hunter2" not in repr(user) and "hunter2" not in repr((user,))


def test_plaintext_password_in_a_group_readable_file_warns(tmp_path):
    text = MINIMAL.replace("username: operator", "username: operator\n      password: pw")
    cfg = load_text(tmp_path, text, mode=0o644)
    assert len(cfg.warnings) == 1 and "readable by group or others" in cfg.warnings[0]
    assert "pw" not in cfg.warnings[0].replace("password", "")


def test_plaintext_password_in_a_private_file_does_not_warn(tmp_path):
    text = MINIMAL.replace("username: operator", "username: operator\n      password: pw")
    assert load_text(tmp_path, text, mode=0o600).warnings == ()


def test_danger_insecure_cert_warns(tmp_path):
    text = MINIMAL + "        danger_insecure_cert: true\n"
    (warning,) = load_text(tmp_path, text).warnings
    assert "danger_insecure_cert" in warning and "hsm.example" in warning


@pytest.mark.parametrize(
    "text, expected",
    [
        ("log_levl: Debug\n" + MINIMAL, ":1: log_levl: unknown key"),
        (
            MINIMAL.replace("    operator:", "    timeout_second: 3\n    operator:"),
            ":3: slots[0].timeout_second: unknown key",
        ),
        ("log_level: Verbose\n" + MINIMAL, ":1: log_level: 'Verbose' is not one of"),
        ("syslog_facility: local9\n" + MINIMAL, ":1: syslog_facility: 'local9' is not one of"),
        (
            "enable_set_attribute_value: maybe\n" + MINIMAL,
            ":1: enable_set_attribute_value: expected true or false",
        ),
        (MINIMAL.replace("https://", "ftp://"), ":6: slots[0].instances[0].url: 'ftp://"),
        (
            MINIMAL + "        sha256_fingerprints: ['AA:BB']\n",
            ":7: slots[0].instances[0].sha256_fingerprints[0]: expected a SHA-256 fingerprint",
        ),
        (
            MINIMAL + "        sha256_fingerprints: ['ZZ" + ":00" * 31 + "']\n",
            ":7: slots[0].instances[0].sha256_fingerprints[0]: expected a SHA-256 fingerprint",
        ),
        (
            MINIMAL + "        max_idle_connections: ten\n",
            ":7: slots[0].instances[0].max_idle_connections: expected an integer",
        ),
        (MINIMAL + "    timeout_seconds: -1\n", ":7: slots[0].timeout_seconds: must be"),
        (
            MINIMAL + "    retries: {count: 3, delay_seconds: x}\n",
            ":7: slots[0].retries.delay_seconds: expected a number of seconds",
        ),
        (
            MINIMAL + "    tcp_keepalive: {time_seconds: 600}\n",
            ":7: slots[0].tcp_keepalive: missing interval_seconds, retries",
        ),
        ("slots: LocalHSM\n", ":1: slots: expected a list"),
        (
            "slots:\n  - label: A\n    instances:\n      - url: https://h\n",
            ":2: slots[0]: needs an operator or an administrator",
        ),
        (
            "slots:\n  - label: A\n    operator: {username: o}\n    instances: []\n",
            ":4: slots[0].instances: at least one instance is required",
        ),
        (
            "slots:\n  - operator: {username: o}\n    instances: [{url: https://h}]\n",
            ":2: slots[0]: label is required",
        ),
        (
            "syslog_socket: /dev/log\nsyslog_tcp: 127.0.0.1:601\n" + MINIMAL,
            ":2: syslog_tcp: only one of syslog_socket, syslog_udp, syslog_tcp",
        ),
        ("syslog_tcp: localhost\n" + MINIMAL, ":1: syslog_tcp: expected host:port"),
        (
            "policy:\n  allowed_mechanisms: [CKM_ECDSA_SHA265]\n" + MINIMAL,
            ":2: policy.allowed_mechanisms[0]: CKM_ECDSA_SHA265 is not a mechanism",
        ),
        ("slots: [\n", ":2: invalid YAML"),
    ],
)
def test_invalid_configuration_names_file_line_and_key(tmp_path, text, expected):
    message = error_of(tmp_path, text)
    assert message.startswith(str(tmp_path / "p11fast.conf") + ":")
    assert expected in message


NESTINGS = {
    "flow sequences": lambda n: "slots: " + "[" * n + "]" * n + "\n",
    "flow mappings": lambda n: "slots: " + "{" * n + "}" * n + "\n",
    "block sequences": lambda n: "slots:\n" + "- " * n + "x\n",
    "block mappings": lambda n: "slots:\n" + "".join(" " * i + "a:\n" for i in range(n)),
}


@pytest.mark.parametrize("nesting", NESTINGS)
def test_nesting_deeper_than_the_bound_is_refused_with_file_and_line(tmp_path, nesting):
    # 100,000 levels crashed the composer's recursion; block mappings need a line per level.
    depth = 1000 if nesting == "block mappings" else 100_000
    message = error_of(tmp_path, "log_level: Info\n" + NESTINGS[nesting](depth))
    line = {"block sequences": 3, "block mappings": 3 + config.MAX_NESTING}.get(nesting, 2)
    where, _, problem = message.partition(" invalid YAML: ")
    assert where == f"{tmp_path / 'p11fast.conf'}:{line}:"
    # PyYAML's own libyaml may stop first, at its limit of 1000, with its own words
    assert problem in (f"nested deeper than {config.MAX_NESTING} levels",
                       "exceeded maximum nesting depth")


def test_nesting_up_to_the_bound_is_composed(tmp_path):
    # The top-level mapping is one level: slots' list nests one less than the bound.
    message = error_of(tmp_path, NESTINGS["flow sequences"](config.MAX_NESTING - 1))
    assert "slots[0]: expected a mapping" in message


def test_a_password_no_nethsm_passphrase_can_be_is_refused(tmp_path, monkeypatch):
    literal = MINIMAL.replace("      username: operator", f"      username: operator\n"
                                                            f"      password: {'p' * 201}")
    assert error_of(tmp_path, literal).endswith(
        ":5: slots[0].operator.password: longer than 200 bytes (no NetHSM passphrase is)")
    monkeypatch.setenv("LONG_PASSWORD", "é" * 101)  # 202 bytes
    from_env = MINIMAL.replace("      username: operator",
                               "      username: operator\n      password: env:LONG_PASSWORD")
    assert error_of(tmp_path, from_env).endswith(
        ":5: slots[0].operator.password: longer than 200 bytes (no NetHSM passphrase is)")


def test_the_longest_password_and_username_a_nethsm_has_are_accepted(tmp_path):
    text = MINIMAL.replace("      username: operator",
                           f"      username: {'u' * 128}\n      password: {'p' * 200}")
    operator = load_text(tmp_path, text).slots[0].operator
    assert (len(operator.username), len(operator.password)) == (128, 200)


def test_a_username_no_nethsm_user_id_can_be_is_refused(tmp_path):
    text = MINIMAL.replace("username: operator", f"username: {'u' * 129}")
    assert error_of(tmp_path, text).endswith(
        ":4: slots[0].operator.username: longer than 128 bytes (no NetHSM user ID is)")


def test_duplicate_slot_labels_are_rejected(tmp_path):
    text = MINIMAL + MINIMAL.replace("slots:\n", "")
    assert "label 'LocalHSM' is used by two slots" in error_of(tmp_path, text)


def test_file_without_slots_is_rejected(tmp_path):
    assert "no slot configured" in error_of(tmp_path, "log_level: Info\n")


def test_syslog_udp_and_tcp_addresses_are_parsed(tmp_path):
    udp = load_text(
        tmp_path, "syslog_udp:\n  to_addr: 127.0.0.1:514\n  from_addr: '[::1]:4789'\n" + MINIMAL
    )
    assert udp.syslog_udp == (("127.0.0.1", 514), ("::1", 4789))
    assert load_text(tmp_path, "syslog_tcp: log.example:601\n" + MINIMAL).syslog_tcp == (
        "log.example",
        601,
    )


def test_policy_section_is_parsed(tmp_path):
    text = (
        "policy:\n  allowed_mechanisms: [CKM_ECDSA, CKM_EDDSA]\n  allow_key_import: false\n"
        "  allow_session_objects: false\n  key_invalidation: true\n" + MINIMAL
    )
    policy = load_text(tmp_path, text).policy
    assert policy.allowed_mechanisms == frozenset({"CKM_ECDSA", "CKM_EDDSA"})
    assert not policy.allow_key_import and not policy.allow_session_objects
    assert policy.key_invalidation


def test_policy_all_mechanisms_means_no_restriction(tmp_path):
    text = "policy:\n  allowed_mechanisms: all\n" + MINIMAL
    assert load_text(tmp_path, text).policy.allowed_mechanisms is None


# ---- where the configuration comes from


def test_path_hint_is_the_only_file_read(tmp_path, monkeypatch):
    other = write(tmp_path / "other.conf", MINIMAL.replace("LocalHSM", "FromEnv"))
    monkeypatch.setenv(config.ENV_CONFIG_FILE, other)
    hinted = write(tmp_path / "hint.conf", MINIMAL)
    cfg = config.load(hinted)
    assert cfg.source_files == (hinted,) and cfg.slots[0].label == "LocalHSM"


def test_p11fast_env_variable_wins_over_the_nitrokey_one(tmp_path, monkeypatch):
    ours = write(tmp_path / "ours.conf", MINIMAL.replace("LocalHSM", "Ours"))
    theirs = write(tmp_path / "theirs.conf", MINIMAL.replace("LocalHSM", "Theirs"))
    monkeypatch.setenv(config.ENV_CONFIG_FILE, ours)
    monkeypatch.setenv(config.ENV_NITROKEY_CONFIG_FILE, theirs)
    assert config.load().slots[0].label == "Ours"


def test_nitrokey_env_variable_is_honoured(tmp_path, monkeypatch):
    theirs = write(tmp_path / "theirs.conf", MINIMAL.replace("LocalHSM", "Theirs"))
    monkeypatch.setenv(config.ENV_NITROKEY_CONFIG_FILE, theirs)
    assert config.load().slots[0].label == "Theirs"


def test_missing_explicit_file_is_an_error(tmp_path):
    with pytest.raises(ConfigError, match="configuration file not found"):
        config.load(str(tmp_path / "nope.conf"))


def test_search_path_files_are_merged(tmp_path):
    write(tmp_path / "etc/p11fast.conf", "log_level: Error\n" + MINIMAL)
    home = os.path.expanduser("~/.config/p11fast/p11fast.conf")
    write(tmp_path / home, "log_level: Debug\n" + MINIMAL.replace("LocalHSM", "Second"))
    cfg = config.load()
    assert [s.label for s in cfg.slots] == ["LocalHSM", "Second"]
    assert cfg.log_level == "Debug"  # the later (more personal) file overrides
    assert len(cfg.source_files) == 2


@pytest.mark.parametrize("home", ["/home/u", "/home/u/", "/", "", None])
def test_home_in_the_search_path_expands_as_os_path_expanduser(monkeypatch, home):
    if home is None:
        monkeypatch.delenv("HOME")  # then the password database says
    else:
        monkeypatch.setenv("HOME", home)
    for path in ("~/.config/p11fast/p11fast.conf", "/etc/p11fast/p11fast.conf"):
        assert config._expand_home(path) == os.path.expanduser(path)


def test_nitrokey_search_path_is_used_when_no_p11fast_file_exists(tmp_path):
    write(tmp_path / "home/.config/nitrokey/p11nethsm.conf", MINIMAL)
    assert config.load().source_files[0].endswith("nitrokey/p11nethsm.conf")


def test_no_file_anywhere_is_an_error():
    with pytest.raises(ConfigError, match="no configuration file found"):
        config.load()
