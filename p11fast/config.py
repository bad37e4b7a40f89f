"""Configuration: YAML files → frozen records, validated with `file:line: key: problem` errors.

Reads Nitrokey's `p11nethsm.conf` format unchanged (docs/configuration.md lists every key).
This runs on every C_Initialize, so it stays cheap: the document is composed from libyaml's
events by p11fast._yamlnodes (PyYAML's nodes without importing PyYAML, which alone costs more
than the rest of a cold start; PyYAML's CSafeLoader when the extension is not built) and walked
as nodes — which keeps the line of every value for error messages — and no dataclasses,
logging, re or json are imported.
"""

from __future__ import annotations

import posix  # not os: p11fast.lean
from _stat import S_ISREG  # what the stat module re-exports

from p11fast.errors import ConfigError
from p11fast.lean import Record, getenv
from p11fast.pins import PIN_MAX_BYTES, USERNAME_MAX_BYTES
from p11fast.policy import PolicyConfig

ENV_CONFIG_FILE = "P11FAST_CONFIG_FILE"
ENV_NITROKEY_CONFIG_FILE = "P11NETHSM_CONFIG_FILE"
SEARCH_PATH = (
    "/etc/p11fast/p11fast.conf",
    "/usr/local/etc/p11fast/p11fast.conf",
    "~/.config/p11fast/p11fast.conf",
)
NITROKEY_SEARCH_PATH = (
    "/etc/nitrokey/p11nethsm.conf",
    "/usr/local/etc/nitrokey/p11nethsm.conf",
    "~/.config/nitrokey/p11nethsm.conf",
)

LOG_LEVELS = ("Trace", "Debug", "Info", "Warn", "Error")
CERTIFICATE_FORMATS = ("PEM", "DER")  # how certificates are stored on the HSM
FACILITIES = (
    "kern", "user", "mail", "daemon", "auth", "syslog", "lpr", "news", "uucp", "cron",
    "authpriv", "ftp", "local0", "local1", "local2", "local3", "local4", "local5", "local6",
    "local7",
)  # fmt: skip
URL_SCHEMES = ("https", "http")
_ENV_PREFIX = "env:"
# The deepest a valid file nests is 7 (slots, a slot, instances, an instance, its fingerprints);
# the bound keeps a hostile file from exhausting the C stack while composing.
MAX_NESTING = 32


class UserConfig(Record):
    username: str
    password: str | None = None  # None: the application's PIN is the password

    def __repr__(self) -> str:
        shown = "None" if self.password is None else "'***'"
        return f"UserConfig(username={self.username!r}, password={shown})"


class RetryConfig(Record):
    count: int = 0
    delay_seconds: float = 0


class KeepaliveConfig(Record):
    time_seconds: int
    interval_seconds: int
    retries: int


class InstanceConfig(Record):
    url: str
    # None: not configured, the transport sizes the pool (Nitrokey: the number of CPUs)
    max_idle_connections: int | None = None
    sha256_fingerprints: tuple[bytes, ...] = ()  # pinned leaf certificates, 32 bytes each
    danger_insecure_cert: bool = False
    cacert: str | None = None  # CA bundle file instead of the system's roots


class SlotConfig(Record):
    label: str
    description: str | None = None
    operator: UserConfig | None = None
    administrator: UserConfig | None = None
    instances: tuple[InstanceConfig, ...] = ()
    retries: RetryConfig = RetryConfig()
    tcp_keepalive: KeepaliveConfig | None = None
    connections_max_idle_duration: float | None = None  # seconds; None = no limit
    # None: the transport's finite defaults (Nitrokey's module has none: infinite)
    timeout_seconds: float | None = None
    certificate_format: str = "PEM"  # one of CERTIFICATE_FORMATS


class Config(Record):
    slots: tuple[SlotConfig, ...]
    log_level: str = "Warn"  # one of LOG_LEVELS
    log_file: str | None = None  # "-" = stderr
    syslog_socket: str | None = None
    syslog_udp: tuple[tuple[str, int], tuple[str, int] | None] | None = None  # (to, from)
    syslog_tcp: tuple[str, int] | None = None
    syslog_facility: str = "user"
    syslog_hostname: str | None = None
    syslog_process: str | None = None
    syslog_pid: int | None = None
    enable_set_attribute_value: bool = False
    disable_threads: bool = False
    # nethsm-pkcs11 2.2: run its worker pool's jobs on the calling thread. p11fast has no
    # worker pool (every request runs on the calling thread), so this changes nothing here.
    disable_thread_pool: bool = False
    policy: PolicyConfig = PolicyConfig()
    source_files: tuple[str, ...] = ()
    warnings: tuple[str, ...] = ()  # logged on every C_Initialize
    # What the result depends on besides the files' text, for p11fast.snapshot: every path
    # whose state was looked at (file identity or None), and the `env:` variables used.
    examined: tuple[tuple[str, FileIdentity | None], ...] = ()
    env_names: tuple[str, ...] = ()


FileIdentity = tuple[int, int, int, int, int]  # st_dev, st_ino, st_size, st_mtime_ns, st_ctime_ns


def file_identity(path: str) -> FileIdentity | None:
    """What tells a regular file's versions apart (stat follows links, as isfile does)."""
    try:
        st = posix.stat(path)
    except (OSError, ValueError):
        return None
    if not S_ISREG(st.st_mode):
        return None
    return (st.st_dev, st.st_ino, st.st_size, st.st_mtime_ns, st.st_ctime_ns)


def load(path_hint: str | None = None) -> Config:
    """The configuration the module uses; `path_hint` comes from `pInitArgs->pReserved`."""
    # Identities are taken before the files are read: an edit while reading shows as a change.
    examined = [(path, file_identity(path)) for path in _discovery_candidates(path_hint)]
    paths = [path for path, identity in examined if identity is not None]
    files = [_read_file(path) for path in _config_files(path_hint, paths)]
    config = _merge(files)
    examined += [(path, file_identity(path)) for parsed in files for path in parsed.examined]
    if config.log_file not in (None, "-"):
        examined.append((config.log_file, file_identity(config.log_file)))
    return config.replace(
        examined=tuple(examined),
        env_names=tuple(dict.fromkeys(n for parsed in files for n in parsed.env_names)),
    )


def _explicit_file(path_hint: str | None) -> str | None:
    """The one file pReserved or an environment variable names, if any."""
    for explicit in (path_hint, getenv(ENV_CONFIG_FILE), getenv(ENV_NITROKEY_CONFIG_FILE)):
        if explicit:
            return explicit
    return None


def _discovery_candidates(path_hint: str | None) -> list[str]:
    """Every path whose state decides which files are read."""
    explicit = _explicit_file(path_hint)
    if explicit:
        return [explicit]
    return [_expand_home(p) for p in SEARCH_PATH + NITROKEY_SEARCH_PATH]


def _expand_home(path: str) -> str:
    """`os.path.expanduser` of the search path's forms: absolute, or under `~/`."""
    if not path.startswith("~/"):
        return path
    home = getenv("HOME")
    if home is None:
        import pwd

        try:
            home = pwd.getpwuid(posix.getuid()).pw_dir
        except KeyError:
            return path
    return home.rstrip("/") + path[1:]


def _config_files(path_hint: str | None, regular_files: list[str]) -> list[str]:
    explicit = _explicit_file(path_hint)
    if explicit:
        if explicit not in regular_files:
            raise ConfigError(f"{explicit}: configuration file not found")
        return [explicit]
    for search_path in (SEARCH_PATH, NITROKEY_SEARCH_PATH):
        found = [p for p in map(_expand_home, search_path) if p in regular_files]
        if found:
            return found
    searched = ", ".join(SEARCH_PATH + NITROKEY_SEARCH_PATH)
    raise ConfigError(
        f"no configuration file found (searched {searched}; or set {ENV_CONFIG_FILE})"
    )


# ---- one file -------------------------------------------------------------------------------

_TOP_KEYS = frozenset(
    (
        "slots", "log_level", "log_file", "syslog_socket", "syslog_udp", "syslog_tcp",
        "syslog_facility", "syslog_hostname", "syslog_process", "syslog_pid",
        "enable_set_attribute_value", "disable_threads", "disable_thread_pool", "policy",
    )
)  # fmt: skip
_SLOT_KEYS = frozenset(
    (
        "label", "description", "operator", "administrator", "instances", "retries",
        "tcp_keepalive", "connections_max_idle_duration", "timeout_seconds",
        "certificate_format",
    )
)  # fmt: skip
_INSTANCE_KEYS = frozenset(
    ("url", "max_idle_connections", "sha256_fingerprints", "danger_insecure_cert", "cacert")
)
_USER_KEYS = frozenset(("username", "password"))
_RETRY_KEYS = frozenset(("count", "delay_seconds"))
_KEEPALIVE_KEYS = frozenset(("time_seconds", "interval_seconds", "retries"))
_UDP_KEYS = frozenset(("to_addr", "from_addr"))
_POLICY_KEYS = frozenset(PolicyConfig.__annotations__)


class _File:
    """One parsed file: its top-level settings (value and location) and its slots."""

    def __init__(self, path: str) -> None:
        self.path = path
        self.settings: dict[str, tuple[object, str]] = {}
        self.policy: dict[str, tuple[object, str]] = {}
        self.slots: list[SlotConfig] = []
        self.warnings: list[str] = []
        self.plaintext_password = False
        self.examined: list[str] = []  # other paths whose state the result depends on
        self.env_names: list[str] = []


def _read_file(path: str) -> _File:
    try:
        with open(path, "rb") as stream:
            text = stream.read()
    except OSError as exc:
        raise ConfigError(f"{path}: cannot read: {exc.strerror}") from None
    parsed = _File(path)
    root = _compose(path, text)
    if root is not None:
        _Walker(parsed).top(root)
    if parsed.plaintext_password:
        mode = posix.stat(path).st_mode
        if mode & 0o077:
            parsed.warnings.append(
                f"{path}: holds a plaintext password but is readable by group or others "
                f"(mode {mode & 0o777:o}); run chmod 600 on it or use `password: env:NAME`"
            )
    return parsed


def _compose(path: str, text: bytes):
    try:
        from p11fast._yamlnodes import YamlError, compose
    except ImportError:  # the compiled extension is not built: PyYAML gives the same nodes
        return _compose_pyyaml(path, text)
    try:
        return compose(text, MAX_NESTING)
    except YamlError as exc:
        line = f":{exc.line}" if exc.line else ""
        raise ConfigError(f"{path}{line}: invalid YAML: {exc.problem}") from None


def _compose_pyyaml(path: str, text: bytes):
    import yaml

    loader_class = getattr(yaml, "CSafeLoader", yaml.SafeLoader)
    try:
        # PyYAML composes recursively, one C (CSafeLoader) or Python frame per level: the
        # events are walked first, and composing starts only if they nest within the bound.
        _check_nesting(path, loader_class(text))
        loader = loader_class(text)
        try:
            return loader.get_single_node()
        finally:
            loader.dispose()
    except yaml.MarkedYAMLError as exc:
        mark = exc.problem_mark or exc.context_mark
        line = mark.line + 1 if mark else 0
        raise ConfigError(f"{path}:{line}: invalid YAML: {exc.problem}") from None
    except yaml.YAMLError as exc:
        raise ConfigError(f"{path}: invalid YAML: {exc}") from None


def _check_nesting(path: str, loader) -> None:
    from yaml.events import CollectionEndEvent, CollectionStartEvent

    depth = 0
    try:
        while loader.check_event():
            event = loader.get_event()
            if isinstance(event, CollectionStartEvent):
                depth += 1
                if depth > MAX_NESTING:
                    raise ConfigError(f"{path}:{event.start_mark.line + 1}: invalid YAML: "
                                      f"nested deeper than {MAX_NESTING} levels")
            elif isinstance(event, CollectionEndEvent):
                depth -= 1
    finally:
        loader.dispose()


_NULL = "tag:yaml.org,2002:null"
_BOOL = "tag:yaml.org,2002:bool"
_INT = "tag:yaml.org,2002:int"
_FLOAT = "tag:yaml.org,2002:float"
_STR = "tag:yaml.org,2002:str"
_MAP = "tag:yaml.org,2002:map"
_SEQ = "tag:yaml.org,2002:seq"


class _Walker:
    """Turns the nodes of one file into records, checking keys and types as it goes."""

    def __init__(self, parsed: _File) -> None:
        self.parsed = parsed

    def error(self, node, key: str, problem: str) -> ConfigError:
        return ConfigError(f"{self.where(node)}: {key}: {problem}")

    def where(self, node) -> str:
        return f"{self.parsed.path}:{node.start_mark.line + 1}"

    # -- structure

    def mapping(self, node, key: str, allowed: frozenset[str]) -> dict:
        if node.tag != _MAP:
            raise self.error(node, key or "(top level)", "expected a mapping")
        fields = {}
        for key_node, value_node in node.value:
            name = key_node.value if key_node.tag == _STR else None
            path = f"{key}.{name}" if key else str(name)
            if name not in allowed:
                raise self.error(key_node, path, "unknown key (see docs/configuration.md)")
            if name in fields:
                raise self.error(key_node, path, "duplicate key")
            fields[name] = value_node
        return fields

    def sequence(self, node, key: str) -> list:
        if node.tag != _SEQ:
            raise self.error(node, key, "expected a list")
        return node.value

    # -- scalars

    def string(self, node, key: str) -> str:
        if node.tag not in (_STR, _INT, _FLOAT) or not node.value:
            raise self.error(node, key, "expected a non-empty string")
        return node.value  # a label like 2024 is still a label

    def optional_string(self, node, key: str) -> str | None:
        return None if node.tag == _NULL else self.string(node, key)

    def boolean(self, node, key: str) -> bool:
        if node.tag != _BOOL:
            raise self.error(node, key, f"expected true or false, got {node.value!r}")
        return node.value.lower() in ("true", "yes", "on", "y")

    def integer(self, node, key: str, minimum: int = 0) -> int:
        if node.tag != _INT:
            raise self.error(node, key, f"expected an integer, got {node.value!r}")
        value = int(node.value.replace("_", ""), 0)
        if value < minimum:
            raise self.error(node, key, f"must be at least {minimum}")
        return value

    def seconds(self, node, key: str, allow_zero: bool = False) -> float:
        if node.tag not in (_INT, _FLOAT):
            raise self.error(node, key, f"expected a number of seconds, got {node.value!r}")
        value = (
            float(node.value.replace("_", "")) if node.tag == _FLOAT else self.integer(node, key)
        )
        if value < 0 or (value == 0 and not allow_zero):
            raise self.error(node, key, "must be positive")
        return value

    def choice(self, node, key: str, choices: tuple[str, ...]) -> str:
        text = self.string(node, key)
        for choice in choices:
            if text.lower() == choice.lower():
                return choice
        raise self.error(node, key, f"{text!r} is not one of {', '.join(choices)}")

    def address(self, node, key: str) -> tuple[str, int]:
        text = self.string(node, key)
        host, _, port = text.rpartition(":")
        host = host.strip("[]")  # [::1]:514
        if not host or not port.isdigit() or not 0 < int(port) < 65536:
            raise self.error(node, key, f"expected host:port, got {text!r}")
        return host, int(port)

    # -- the document

    def top(self, root) -> None:
        fields = self.mapping(root, "", _TOP_KEYS)
        for name, node in fields.items():
            if name == "slots":
                items = self.sequence(node, "slots")
                self.parsed.slots = [self.slot(n, f"slots[{i}]") for i, n in enumerate(items)]
            elif name == "policy":
                self.policy(node)
            else:
                self.parsed.settings[name] = (self.setting(name, node), self.where(node))

    def setting(self, name: str, node) -> object:
        if name == "log_level":
            return self.choice(node, name, LOG_LEVELS)
        if name == "syslog_facility":
            return self.choice(node, name, FACILITIES)
        if name in ("enable_set_attribute_value", "disable_threads", "disable_thread_pool"):
            return self.boolean(node, name)
        if name == "syslog_pid":
            return self.integer(node, name)
        if name == "syslog_tcp":
            return self.address(node, name)
        if name == "syslog_udp":
            udp = self.mapping(node, name, _UDP_KEYS)
            if "to_addr" not in udp:
                raise self.error(node, name, "to_addr is required")
            from_node = udp.get("from_addr")
            source = self.address(from_node, f"{name}.from_addr") if from_node else None
            return (self.address(udp["to_addr"], f"{name}.to_addr"), source)
        return self.optional_string(node, name)

    def policy(self, node) -> None:
        for name, value_node in self.mapping(node, "policy", _POLICY_KEYS).items():
            key = f"policy.{name}"
            if name == "allowed_mechanisms":
                value = self.mechanisms(value_node, key)
            else:
                value = self.boolean(value_node, key)
            self.parsed.policy[name] = (value, self.where(value_node))

    def mechanisms(self, node, key: str) -> frozenset[str] | None:
        # Imported here: C_Initialize reads the configuration before the pools start their
        # first connection, and few configurations name mechanisms.
        from p11fast.mechanisms import NAMES

        if node.tag == _STR and node.value == "all":
            return None
        names = []
        for i, item in enumerate(self.sequence(node, key)):
            name = self.string(item, f"{key}[{i}]")
            if name not in NAMES:
                raise self.error(item, f"{key}[{i}]", f"{name} is not a mechanism p11fast has")
            names.append(name)
        return frozenset(names)

    def slot(self, node, key: str) -> SlotConfig:
        fields = self.mapping(node, key, _SLOT_KEYS)
        values: dict[str, object] = {}
        for name, value_node in fields.items():
            values[name] = self.slot_field(name, value_node, f"{key}.{name}")
        if "label" not in values:
            raise self.error(node, key, "label is required")
        if not values.get("operator") and not values.get("administrator"):
            raise self.error(node, key, "needs an operator or an administrator (or both)")
        if not values.get("instances"):
            where = fields.get("instances", node)
            raise self.error(where, f"{key}.instances", "at least one instance is required")
        return SlotConfig(**values)

    def slot_field(self, name: str, node, key: str) -> object:
        if name == "label":
            return self.string(node, key)
        if name == "description":
            return self.optional_string(node, key)
        if name == "certificate_format":
            return self.choice(node, key, CERTIFICATE_FORMATS)
        if name in ("operator", "administrator"):
            return None if node.tag == _NULL else self.user(node, key)
        if name == "instances":
            items = self.sequence(node, key)
            return tuple(self.instance(n, f"{key}[{i}]") for i, n in enumerate(items))
        if name == "retries":
            fields = self.mapping(node, key, _RETRY_KEYS)
            return RetryConfig(**{
                n: self.integer(v, f"{key}.{n}") if n == "count"
                else self.seconds(v, f"{key}.{n}", allow_zero=True)
                for n, v in fields.items()
            })  # fmt: skip
        if name == "tcp_keepalive":
            fields = self.mapping(node, key, _KEEPALIVE_KEYS)
            missing = _KEEPALIVE_KEYS - fields.keys()
            if missing:
                raise self.error(node, key, f"missing {', '.join(sorted(missing))}")
            return KeepaliveConfig(
                **{n: self.integer(v, f"{key}.{n}", minimum=1) for n, v in fields.items()}
            )
        # connections_max_idle_duration, timeout_seconds
        return None if node.tag == _NULL else self.seconds(node, key)

    def user(self, node, key: str) -> UserConfig:
        fields = self.mapping(node, key, _USER_KEYS)
        if "username" not in fields:
            raise self.error(node, key, "username is required")
        username = self.string(fields["username"], f"{key}.username")
        if len(username.encode()) > USERNAME_MAX_BYTES:
            raise self.error(fields["username"], f"{key}.username",
                             f"longer than {USERNAME_MAX_BYTES} bytes (no NetHSM user ID is)")
        password_node = fields.get("password")
        if password_node is None or password_node.tag == _NULL or password_node.value == "":
            return UserConfig(username=username)
        return UserConfig(username=username, password=self.password(password_node, key))

    def password(self, node, key: str) -> str | None:
        text = self.string(node, f"{key}.password")  # unquoted 1234 is the text 1234
        if not text.startswith(_ENV_PREFIX):
            self.parsed.plaintext_password = True
            return self.passphrase(node, key, text)
        variable = text[len(_ENV_PREFIX) :]
        self.parsed.env_names.append(variable)
        value = getenv(variable)
        if value is None:
            raise self.error(node, f"{key}.password", f"environment variable {variable} is not set")
        return self.passphrase(node, key, value) or None

    def passphrase(self, node, key: str, text: str) -> str:
        if len(text.encode()) > PIN_MAX_BYTES:
            raise self.error(node, f"{key}.password",
                             f"longer than {PIN_MAX_BYTES} bytes (no NetHSM passphrase is)")
        return text

    def instance(self, node, key: str) -> InstanceConfig:
        fields = self.mapping(node, key, _INSTANCE_KEYS)
        if "url" not in fields:
            raise self.error(node, key, "url is required")
        values: dict[str, object] = {"url": self.url(fields["url"], f"{key}.url")}
        for name, value_node in fields.items():
            field_key = f"{key}.{name}"
            if name == "max_idle_connections":
                values[name] = self.integer(value_node, field_key)  # 0 counts as 1
            elif name == "sha256_fingerprints":
                items = self.sequence(value_node, field_key)
                values[name] = tuple(
                    self.fingerprint(n, f"{field_key}[{i}]") for i, n in enumerate(items)
                )
            elif name == "danger_insecure_cert":
                values[name] = self.boolean(value_node, field_key)
            elif name == "cacert":
                values[name] = self.cacert(value_node, field_key)
        instance = InstanceConfig(**values)
        if instance.danger_insecure_cert:
            self.parsed.warnings.append(
                f"{self.where(node)}: {key}: danger_insecure_cert is on: the TLS certificate "
                f"of {instance.url} is not verified; use sha256_fingerprints instead"
            )
        return instance

    def url(self, node, key: str) -> str:
        text = self.string(node, key)
        scheme, sep, rest = text.partition("://")
        if not sep or scheme.lower() not in URL_SCHEMES:
            raise self.error(node, key, f"{text!r}: the scheme must be https:// (or http://)")
        if not rest.split("/", 1)[0]:
            raise self.error(node, key, f"{text!r}: no host")
        return text.rstrip("/")

    def fingerprint(self, node, key: str) -> bytes:
        text = self.string(node, key)
        try:
            value = bytes.fromhex(text.replace(":", ""))
        except ValueError:
            value = b""
        if len(value) != 32:
            raise self.error(node, key, "expected a SHA-256 fingerprint: 32 hex bytes (AA:BB:…)")
        return value

    def cacert(self, node, key: str) -> str:
        path = self.string(node, key)
        self.parsed.examined.append(path)
        if file_identity(path) is None:  # os.path.isfile
            raise self.error(node, key, f"{path}: no such file")
        return path


# ---- all files ------------------------------------------------------------------------------

_SYSLOG_TARGETS = ("syslog_socket", "syslog_udp", "syslog_tcp")


def _merge(files: list[_File]) -> Config:
    """Slots of all files in order; a later file's setting overrides an earlier one's."""
    settings: dict[str, tuple[object, str]] = {}
    policy: dict[str, tuple[object, str]] = {}
    for parsed in files:
        settings.update(parsed.settings)
        policy.update(parsed.policy)
    slots = tuple(slot for parsed in files for slot in parsed.slots)
    _check_slots(slots, files)
    _check_one_syslog_target(settings)
    values = {name: value for name, (value, _) in settings.items()}
    return Config(
        slots=slots,
        policy=PolicyConfig(**{name: value for name, (value, _) in policy.items()}),
        source_files=tuple(parsed.path for parsed in files),
        warnings=tuple(w for parsed in files for w in parsed.warnings),
        **values,
    )


def _check_slots(slots: tuple[SlotConfig, ...], files: list[_File]) -> None:
    paths = ", ".join(parsed.path for parsed in files)
    if not slots:
        raise ConfigError(f"{paths}: slots: no slot configured")
    labels = [slot.label for slot in slots]
    for label in labels:
        if labels.count(label) > 1:
            raise ConfigError(f"{paths}: slots: label {label!r} is used by two slots")


def _check_one_syslog_target(settings: dict[str, tuple[object, str]]) -> None:
    given = [
        (name, settings[name][1])
        for name in _SYSLOG_TARGETS
        if name in settings and settings[name][0] is not None
    ]
    if len(given) > 1:
        (first, _), (second, where) = given[:2]
        raise ConfigError(
            f"{where}: {second}: only one of syslog_socket, syslog_udp, syslog_tcp may be set "
            f"({first} is set too)"
        )
