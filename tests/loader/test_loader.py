"""The loader (p11fast/loader/) against a fake ABI, from a C host and from Python.

The loader is compiled here with setup.py's flags, so these tests do not depend on the Cython
parts building. The fake ABI (fake_abi.c) is a C extension named p11fast._abi with the capsules
of docs/architecture.md; the package around it (an __init__ that records how the interpreter
was configured) is laid out in a temporary site directory, like an installed wheel.
"""

import json
import os
import shutil
import subprocess
import sys
import sysconfig
import textwrap

import pytest

import loader_build

HERE = os.path.dirname(os.path.abspath(__file__))
REPO = os.path.dirname(os.path.dirname(HERE))
INCLUDE = os.path.join(REPO, "include")
PY_INCLUDE = sysconfig.get_paths()["include"]
VERSION = f"{sys.version_info.major}.{sys.version_info.minor}"

# The fake package records the interpreter it was imported into.
INIT = textwrap.dedent("""\
    import json, os, sys
    with open(os.path.join(os.path.dirname(__file__), "report.json"), "w") as f:
        json.dump({"prefix": sys.prefix, "base_prefix": sys.base_prefix, "path": sys.path,
                   "isolated": sys.flags.isolated, "no_site": sys.flags.no_site,
                   "utf8_mode": sys.flags.utf8_mode}, f)
""")


def loader_command(target: str) -> list[str]:
    """setup.py's command for the loader, with -Werror."""
    flags = ["-Wall", "-Werror", "-Wno-unused-function", "-fvisibility=hidden", "-O2"]
    return loader_build.command(target, flags)


@pytest.fixture(scope="module")
def build(tmp_path_factory):
    out = tmp_path_factory.mktemp("build")
    artefacts = {
        "loader": str(out / "libp11fast.so"),
        "abi": str(out / ("_abi" + sysconfig.get_config_var("EXT_SUFFIX"))),
        "host": str(out / "host"),
    }
    subprocess.run(loader_command(artefacts["loader"]), check=True)
    subprocess.run(["cc", "-Wall", "-Werror", "-fPIC", "-shared", "-std=c11", f"-I{INCLUDE}",
                    f"-I{PY_INCLUDE}", os.path.join(HERE, "fake_abi.c"), "-o", artefacts["abi"]],
                   check=True)
    subprocess.run(["cc", "-Wall", "-Werror", "-std=gnu11", f"-I{INCLUDE}",
                    os.path.join(HERE, "host.c"), "-o", artefacts["host"], "-ldl", "-lpthread"],
                   check=True)
    return artefacts


def package(build, site, abi=True) -> str:
    """Lays out <site>/p11fast as an installed wheel would; returns the module path."""
    pkg = os.path.join(site, "p11fast")
    os.makedirs(pkg)
    with open(os.path.join(pkg, "__init__.py"), "w") as f:
        f.write(INIT)
    shutil.copy(build["loader"], pkg)
    if abi:
        shutil.copy(build["abi"], pkg)
    return os.path.join(pkg, "libp11fast.so")


def report(module: str) -> dict:
    with open(os.path.join(os.path.dirname(module), "report.json")) as f:
        return json.load(f)


def host(build, module, scenario, **env):
    """Runs the C host with an empty environment: no PYTHONPATH, PYTHONHOME, locale."""
    return subprocess.run(["env", "-i", *(f"{k}={v}" for k, v in env.items()), build["host"],
                           module, scenario], capture_output=True, text=True, timeout=30)


def results(run) -> list[str]:
    return [line for line in run.stdout.splitlines() if line.startswith("C_")]


def test_c_host_without_python(build, tmp_path):
    module = package(build, str(tmp_path / "site"))
    run = host(build, module, "full")
    assert run.returncode == 0 and "FAIL" not in run.stdout, run.stdout + run.stderr
    assert run.stdout.count("ok:") >= 35
    assert run.stderr == ""
    seen = report(module)
    assert seen["path"][0] == str(tmp_path / "site")
    assert seen["base_prefix"] == sys.base_prefix  # source-tree layout: the build's Python
    assert seen["isolated"] and seen["no_site"] and seen["utf8_mode"]


def test_venv_layout(build, tmp_path):
    venv = tmp_path / "venv"
    site = venv / "lib" / f"python{VERSION}" / "site-packages"
    os.makedirs(site)
    (venv / "pyvenv.cfg").write_text(
        f"home = {sys.base_prefix}/bin\ninclude-system-site-packages = false\n")
    module = package(build, str(site))
    run = host(build, module, "init")
    assert results(run) == ["C_Initialize: 0x0", "C_GetInfo: 0x0"], run.stderr
    seen = report(module)
    assert seen["prefix"] == str(venv) and seen["base_prefix"] == sys.base_prefix
    assert seen["path"][0] == str(site)
    assert os.path.join(sys.base_prefix, "lib", f"python{VERSION}") in seen["path"]


def test_missing_libpython(build, tmp_path):
    module = package(build, str(tmp_path / "lonely"))
    run = host(build, module, "init", P11FAST_LIBPYTHON="/nonexistent/libpython.so")
    assert results(run) == ["C_Initialize: 0x5", "C_GetInfo: 0x190"]
    lines = run.stderr.splitlines()
    assert len(lines) == 1 and lines[0].startswith(f"p11fast: cannot load libpython{VERSION}")
    assert "--enable-shared" in lines[0] and f"libpython{VERSION}" in lines[0]


def test_missing_abi(build, tmp_path):
    module = package(build, str(tmp_path / "site"), abi=False)
    run = host(build, module, "init")
    assert results(run) == ["C_Initialize: 0x5", "C_GetInfo: 0x190"]
    assert run.stderr.startswith("p11fast: cannot import p11fast._abi")
    assert "ModuleNotFoundError" in run.stderr and len(run.stderr.splitlines()) == 1


CTYPES_HOST = textwrap.dedent("""\
    import ctypes, os, sys, threading
    lib = ctypes.CDLL(sys.argv[1])
    lst = ctypes.c_void_p()
    assert lib.C_GetFunctionList(ctypes.byref(lst)) == 0
    slots = ctypes.cast(lst.value + 8, ctypes.POINTER(ctypes.c_void_p))  # after CK_VERSION
    def fn(index, factory=ctypes.CFUNCTYPE):
        return factory(ctypes.c_ulong, ctypes.c_void_p)(slots[index])
    info = ctypes.create_string_buffer(256)
    def ours(factory=ctypes.CFUNCTYPE):
        rv = fn(2, factory)(info)
        return rv == 0 and info.raw[2:10] == b"fake-abi" and \\
            info.raw[48:80].split(b"\\0")[0] == str(os.getpid()).encode()
    print("C_Initialize", fn(0)(None))
    if "p11fast._abi" in sys.modules:
        print("abi", sys.modules["p11fast._abi"].__file__)
        print("info", ours())
        print("info holding the GIL", ours(ctypes.PYFUNCTYPE))
        done = []
        t = threading.Thread(target=lambda: done.append(ours()))
        t.start(); t.join()
        print("info from a thread", done == [True])
        print("C_Finalize", fn(1)(None))
""")


def test_python_host_reuses_its_interpreter(build, tmp_path):
    site = str(tmp_path / "site")
    module = package(build, site)
    run = subprocess.run([sys.executable, "-c", CTYPES_HOST, module], capture_output=True,
                         text=True, timeout=30, env={"PYTHONPATH": site, "PATH": "/usr/bin:/bin"},
                         cwd=tmp_path)  # not the repository, whose p11fast would come first
    assert run.returncode == 0, run.stderr
    lines = run.stdout.splitlines()
    assert lines[0] == "C_Initialize 0"
    assert lines[1].startswith(f"abi {site}/p11fast/_abi")
    assert lines[2:] == ["info True", "info holding the GIL True", "info from a thread True",
                         "C_Finalize 0"]
    assert not report(module)["isolated"]  # the host's interpreter, not one of ours


def other_python() -> str | None:
    """Any CPython 3 of another minor version: pyenv's, then the system's."""
    pyenv = os.path.expanduser("~/.pyenv/versions")
    candidates = [os.path.join(pyenv, v, "bin", "python" + ".".join(v.split(".")[:2]))
                  for v in sorted(os.listdir(pyenv))] if os.path.isdir(pyenv) else []
    candidates += [f"/usr/bin/python3.{minor}" for minor in range(8, 15)]
    for path in candidates:
        if os.path.exists(path) and not path.endswith("python" + VERSION) and \
                os.path.basename(path).startswith("python3."):
            return path
    return None


def test_python_host_of_another_version(build, tmp_path):
    python = other_python()
    if python is None:
        pytest.skip("no Python of another version installed")
    site = str(tmp_path / "site")
    module = package(build, site)
    run = subprocess.run([python, "-c", CTYPES_HOST, module], capture_output=True, text=True,
                         timeout=30, env={"PATH": "/usr/bin:/bin"}, cwd=tmp_path)
    assert run.returncode == 0, run.stderr
    assert run.stdout.splitlines() == ["C_Initialize 5"]
    running = subprocess.run([python, "-c", "import sys; print('%d.%d' % sys.version_info[:2])"],
                             capture_output=True, text=True).stdout.strip()
    assert run.stderr == (
        f"p11fast: this module was built for Python {VERSION}, the process runs Python "
        f"{running}: install p11fast into that Python and use its `p11fast module-path`\n")
