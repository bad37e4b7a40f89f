"""The wheel as a user gets it: installed into a fresh virtual environment outside the source
tree, used by hosts that share nothing of this test's environment."""

from __future__ import annotations

import glob
import os
import re
import subprocess
import zipfile

from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.hazmat.primitives.asymmetric.utils import encode_dss_signature

from p11fast.hsm.testing import OPERATOR_PASSPHRASE
from tests.packaging.conftest import KEY_LABEL, ROOT, build_host

MESSAGE = "signed through the installed wheel"


def loader_entry_points() -> list[str]:
    """What _abi exports for the loader, as its two headers declare them: the transport's
    (light mode, set-up, fork handling: transport/capi.h) and the ABI's compiled session
    functions (abi/compiled.h)."""
    names = []
    for header, marker in (("transport/capi.h", "P11F_TRANSPORT_API"),
                           ("abi/compiled.h", "P11F_ABI_API")):  # fmt: skip
        with open(os.path.join(ROOT, "p11fast", header)) as f:
            names += re.findall(rf"^{marker} \w+ (\w+);$", f.read(), re.M)
    return names


def verify(public_key, raw: bytes, message: bytes) -> None:
    half = len(raw) // 2
    der = encode_dss_signature(int.from_bytes(raw[:half]), int.from_bytes(raw[half:]))
    public_key.verify(der, message, ec.ECDSA(hashes.SHA256()))


def sign_with_host(exe: str, module: str, config: str, env: dict[str, str]) -> str:
    done = subprocess.run(
        [exe, module, config, OPERATOR_PASSPHRASE, KEY_LABEL, MESSAGE],
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert done.returncode == 0 and done.stdout.endswith("ok\n"), done.stdout + done.stderr
    return done.stdout


def signature(output: str) -> bytes:
    return bytes.fromhex(re.search(r"^sig ([0-9a-f]+)$", output, re.M).group(1))


def test_wheel_holds_the_loader_extensions_and_every_package(installed):
    names = zipfile.ZipFile(installed.wheel).namelist()
    for name in ("libp11fast.so", "__init__.py", "hsm/__init__.py", "hsm/app.py", "_abi.pxd"):
        assert f"p11fast/{name}" in names
    # every subpackage: pyproject.toml lists them one by one
    source = os.path.join(ROOT, "p11fast")
    for folder, _, files in os.walk(source):
        if "__init__.py" in files:
            package = os.path.relpath(folder, ROOT)
            assert f"{package}/__init__.py" in names, package
    # The loader and two extensions: the compiled core (ABI, transport and codec, one copy of
    # libcurl and OpenSSL) and the config's YAML parser.
    shared = [re.sub(r"\.cpython-.*\.so$", "", n) for n in names if n.endswith(".so")]
    assert sorted(shared) == ["p11fast/_abi", "p11fast/_yamlnodes", "p11fast/libp11fast.so"]
    # What other Cython code needs to cimport the core: its root includes its pieces'
    # declarations, which cimport _decl and name the transport's C headers.
    declarations = [
        os.path.relpath(path, ROOT)
        for pattern in (
            "_decl/*.pxd", "transport/*.pxd", "transport/*.h", "codec/*.pxd", "abi/*.pxd"
        )
        for path in glob.glob(os.path.join(ROOT, "p11fast", pattern))
    ]
    assert declarations and [d for d in declarations if d not in names] == []
    assert not [n for n in names if n.endswith(".c")], "Cython output belongs in the sdist only"
    # Bytecode is the installer's to write, for the Python it installs into; tests stay home.
    assert not [n for n in names if "__pycache__" in n or n.endswith(".pyc")]
    assert not [n for n in names if n.startswith("tests/") or "/tests/" in n]
    site = os.path.dirname(os.path.dirname(installed.module))
    assert installed.module.startswith(installed.venv) and not installed.module.startswith(ROOT)
    # The embedded interpreter never writes bytecode (cold start reads it): pip compiled it.
    cached = os.listdir(os.path.join(site, "p11fast", "__pycache__"))
    assert any(n.startswith("config.") and n.endswith(".pyc") for n in cached), cached


def test_extensions_need_nothing_but_libc_and_export_only_their_init(installed):
    # The static, hidden libcurl and OpenSSL of a release wheel: nothing to resolve against a
    # host's copies, nothing of ours for a host to bind to.
    site = os.path.dirname(installed.module)
    for name in os.listdir(site):
        if not name.endswith(".so") or name == "libp11fast.so":
            continue
        path = os.path.join(site, name)
        needed = re.findall(
            r"\(NEEDED\).*\[(.*)\]", subprocess.check_output(["readelf", "-d", path], text=True)
        )
        glibc = [n for n in needed if re.fullmatch(r"lib(c|m|pthread|dl)\.so\.\d|ld-linux.*", n)]
        assert needed == glibc, (name, needed)
        dynsym = subprocess.check_output(["nm", "-D", path], text=True)
        foreign = re.findall(r"\b(?:curl_\w+|SSL_\w+|EVP_\w+|X509_\w+|OPENSSL_\w+)", dynsym)
        assert not foreign, (name, foreign[:5])
        exported = re.findall(r" [TDB] (\w+)", dynsym)
        module = name.split(".")[0]
        loader = loader_entry_points() if module == "_abi" else []
        assert sorted(exported) == sorted([f"PyInit_{module}", *loader]), (name, exported)


def test_c_host_with_an_empty_environment_signs(installed, hsm, public_key, tmp_path):
    exe = build_host(tmp_path, "sign_host")
    out = sign_with_host(exe, installed.module, hsm.config_path, env={})
    verify(public_key, signature(out), MESSAGE.encode())


def test_pkcs11_tool_with_only_the_config_in_its_environment_signs(
    installed, hsm, public_key, tmp_path
):
    (tmp_path / "msg").write_text(MESSAGE)
    done = subprocess.run(
        ["pkcs11-tool", "--module", installed.module, "--login", "--pin", OPERATOR_PASSPHRASE]
        + ["--sign", "--mechanism", "ECDSA-SHA256", "--label", KEY_LABEL]
        + ["--input-file", str(tmp_path / "msg"), "--output-file", str(tmp_path / "sig")],
        env={"P11FAST_CONFIG_FILE": hsm.config_path},
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert done.returncode == 0, done.stdout + done.stderr
    verify(public_key, (tmp_path / "sig").read_bytes(), MESSAGE.encode())


def test_python_host_in_the_venv_signs_with_its_own_interpreter(installed, hsm, public_key):
    script = f"""
import pkcs11, p11fast
lib = pkcs11.lib(p11fast.module_path())
token = lib.get_slots(token_present=True)[0].get_token()
with token.open(user_pin={OPERATOR_PASSPHRASE!r}) as session:
    key = session.get_key(pkcs11.ObjectClass.PRIVATE_KEY, label={KEY_LABEL!r})
    print(key.sign({MESSAGE!r}.encode(), mechanism=pkcs11.Mechanism.ECDSA_SHA256).hex())
"""
    done = subprocess.run(
        [installed.python, "-c", script],
        env={"P11FAST_CONFIG_FILE": hsm.config_path},
        cwd="/",
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert done.returncode == 0, done.stdout + done.stderr
    verify(public_key, bytes.fromhex(done.stdout.strip()), MESSAGE.encode())


def test_host_with_the_system_libcurl_and_openssl_loaded_signs_with_its_own_copies(
    installed, hsm, public_key, tmp_path
):
    exe = build_host(tmp_path, "tls_host", ("-DSYSTEM_TLS",), ("-lcurl", "-lssl", "-lcrypto"))
    trace = tmp_path / "bindings"
    env = {"LD_DEBUG": "bindings", "LD_DEBUG_OUTPUT": str(trace)}
    out = sign_with_host(exe, installed.module, hsm.config_path, env=env)
    assert "host libcurl/" in out
    verify(public_key, signature(out), MESSAGE.encode())
    # The dynamic linker's record of every symbol binding: no call from our extensions went to
    # the host's libcurl, libssl or libcrypto (ours are linked in), while the host's own calls
    # did bind there, so the trace does show such bindings when they happen.
    (log,) = [p.read_text() for p in tmp_path.glob("bindings.*") if "binding file" in p.read_text()]
    ours = [line for line in log.splitlines() if re.search(r"binding file \S*/p11fast/_", line)]
    assert ours, "the trace covers our extensions"
    to_system = [line for line in ours if re.search(r"to \S*lib(curl|ssl|crypto)\.so", line)]
    assert not to_system, to_system[:5]
    assert re.search(r"binding file \S*tls_host \[0\] to \S*libcurl\.so\.4", log)


def test_release_smoke_script_passes_with_the_venv_python(installed):
    # What cibuildwheel's test-command runs against each release wheel (smoke.py).
    done = subprocess.run(
        [installed.python, os.path.join(ROOT, "tests", "packaging", "smoke.py"), "--system-tls"],
        cwd="/",
        capture_output=True,
        text=True,
        timeout=180,
    )
    assert done.returncode == 0, done.stdout + done.stderr
    assert "ok: C host, empty environment" in done.stdout
    assert "ok: Python host (python-pkcs11)" in done.stdout
    assert "ok: pkcs11-tool" in done.stdout


def test_release_extension_leaves_its_own_openssl_to_the_process_exit(
    installed, hsm, public_key, tmp_path
):
    # Its only exit handler is the transport's (which stops the background thread): the static,
    # hidden OpenSSL registers none, so a one-shot process does not free it before exiting.
    preload = str(tmp_path / "exit_handlers.so")
    subprocess.run(
        ["cc", "-shared", "-fPIC", "-O1", "-Wall", "-o", preload,
         os.path.join(ROOT, "tests", "packaging", "exit_handlers.c"), "-ldl"],
        check=True,
    )
    log = tmp_path / "handlers"
    env = {"LD_PRELOAD": preload, "P11FAST_EXIT_HANDLERS_LOG": str(log)}
    out = sign_with_host(build_host(tmp_path, "sign_host"), installed.module, hsm.config_path, env)
    verify(public_key, signature(out), MESSAGE.encode())
    handlers = log.read_text().splitlines()
    assert len(handlers) == 1, handlers
