"""p11fast benchmarks: every measurement of docs/design.md's Performance table, from one command.

    benchmarks/run.sh [--duration 5] [--warmup 1] [--threads 1,2,8,32,64] [--only PARTS]
                      [--release-wheel]

(run.sh installs the working tree into benchmarks/out/venv and runs this file with that venv's
Python; `--module` points at another build; `--release-wheel` also builds the wheel as releases
ship it and times `pkcs11-tool` with it.) Parts, each runnable alone with `--only`:

  nginx    p11load -> p11fast -> nginx with canned NetHSM answers (what the module costs)
  mechs    the same for ecdsa-sha256, rsa-sha256 and rsa-decrypt at 8 threads
  hsm      p11load -> p11fast -> `p11fast hsm serve` (what a user sees end to end)
  softhsm  p11load -> SoftHSM2 (the local-token reference)
  wrk      wrk POSTing the module's sign request to the same nginx (the HTTP floor)
  tool     `pkcs11-tool -L` and `--sign`, one process per operation, under hyperfine
  oneshot  `pkcs11-tool -L`, `--sign` (ECDSA, RSA, by --id) and the alternating worst case,
           interleaved rounds against SoftHSM2, and where each millisecond goes (oneshot.py)
  profile  perf record and callgrind instruction counts of one p11load thread against nginx,
           and callgrind over one `pkcs11-tool -L` (where a cold start's instructions go)

Raw output goes to benchmarks/out/<UTC time>/ (one file per run, the exact command line in
each), a summary.json and results.md; benchmarks/out/latest points at the newest run.
"""

from __future__ import annotations

import argparse
import base64
import datetime
import json
import os
import platform
import re
import resource
import shlex
import shutil
import ssl
import subprocess
import sys
import tempfile
import time
import urllib.request
from contextlib import ExitStack, contextmanager

import nginx_backend
import oneshot

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(HERE)
PARTS = ("nginx", "mechs", "hsm", "softhsm", "wrk", "tool", "oneshot", "profile")
SOFTHSM = "/usr/lib/softhsm/libsofthsm2.so"
SOFTHSM_PIN = "1234"
KEY = "bench"  # the label (and NetHSM key ID) of the P-256 key in every target


def sh(cmd: list[str], **kw) -> str:
    return subprocess.run(cmd, capture_output=True, text=True, check=True, **kw).stdout.strip()


def say(*lines: str) -> None:
    print(*lines, sep="\n", flush=True)


# -- the machine -------------------------------------------------------------------------------


def load_average() -> str:
    with open("/proc/loadavg") as f:
        return " ".join(f.read().split()[:3])


def machine() -> dict:
    def first(cmd: list[str]) -> str:
        try:
            done = subprocess.run(cmd, capture_output=True, text=True)
            return (done.stdout + done.stderr).strip().splitlines()[0]
        except (OSError, IndexError):
            return "unavailable"

    with open("/proc/cpuinfo") as f:
        model = next((ln.split(":", 1)[1].strip() for ln in f if ln.startswith("model name")), "?")
    commit = sh(["git", "-C", ROOT, "rev-parse", "HEAD"])
    # RESULTS.md is what a run writes: its own edits do not make the measured code differ.
    dirty = bool(sh(["git", "-C", ROOT, "status", "--porcelain", "--untracked-files=no", "--",
                     ".", ":(exclude)benchmarks/RESULTS.md"]))
    return {
        "date": datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%d %H:%M:%S UTC"),
        "cpu": model,
        "cores": os.cpu_count(),
        "kernel": platform.release(),
        "uname": sh(["uname", "-a"]),
        "commit": commit + (" (with uncommitted changes)" if dirty else ""),
        "python": sys.version.split()[0],
        "load_average": load_average(),
        "tools": {
            "nginx": first(["/usr/sbin/nginx", "-v"]),
            "wrk": first(["wrk", "-v"]),
            "openssl": first(["openssl", "version"]),
            "libcurl": first(["curl-config", "--version"]),
            "softhsm2": first(["softhsm2-util", "--version"]),
            "opensc (pkcs11-tool)": first(["dpkg-query", "-W", "-f=${Version}", "opensc"]),
            "hyperfine": first(["hyperfine", "--version"]),
        },
    }


# -- p11load -----------------------------------------------------------------------------------


def build_p11load(out: str) -> str:
    exe = os.path.join(out, "p11load")
    # -rdynamic: p11load's connect() must interpose libc's for the module (see p11load.c).
    cmd = ["cc", "-O2", "-g", "-Wall", "-Wextra", "-Werror", "-rdynamic",
           f"-I{ROOT}/include", f"{HERE}/p11load.c", "-o", exe, "-ldl", "-lpthread"]
    say("$ " + shlex.join(cmd))
    subprocess.run(cmd, check=True)
    return exe


class Runner:
    def __init__(self, args: argparse.Namespace, out: str, p11load: str):
        self.args, self.out, self.p11load = args, out, p11load

    def raw(self, name: str, command: list[str], text: str) -> None:
        with open(os.path.join(self.out, name), "w") as f:
            f.write("$ " + shlex.join(command) + "\n" + text)

    def p11load_run(self, name: str, module: str, env: dict, threads: int, *extra: str,
                    port: int = 0, backend: nginx_backend.Backend | None = None) -> dict:
        cmd = [self.p11load, "--module", module, "--threads", str(threads),
               "--duration", str(self.args.duration), "--warmup", str(self.args.warmup),
               "--port", str(port), "--json", *extra]
        say("$ " + shlex.join(cmd))
        accepted = backend.accepted() if backend else None
        done = subprocess.run(cmd, env=env, capture_output=True, text=True,
                              timeout=self.args.duration + self.args.warmup + 120)
        self.raw(f"{name}-t{threads}.txt", cmd, done.stdout + done.stderr)
        try:
            result = json.loads(done.stdout)
        except json.JSONDecodeError:
            say(f"  {name} t={threads}: p11load failed ({done.returncode}): "
                + done.stderr.strip()[-500:])
            return {"failed": done.stderr.strip()[-500:], "threads": threads}
        if backend:
            # minus the stub_status request that reads the counter
            result["server_accepted"] = backend.accepted() - accepted - 1
        say(f"  {name:14} t={threads:<3} {result['ops_per_s']:>9.0f} ops/s  "
            f"p50 {result['p50_us']:7.1f} µs  p99 {result['p99_us']:8.1f} µs  "
            f"cpu/op {result['cpu_us_per_op']:6.1f} µs  errors {result['errors']}  "
            f"conns {result['conn_opened_setup']}+{result['conn_opened_measured']}")
        return result


# -- targets -----------------------------------------------------------------------------------


@contextmanager
def softhsm_token(directory: str):
    """A SoftHSM2 token of its own (its own token directory, so concurrent runs never share
    one) holding the nginx backend's key types under the same labels and CKA_IDs: an EC P-256
    key `bench` and an RSA 2048 key `benchrsa`."""
    tokens = os.path.join(directory, "tokens")
    os.makedirs(tokens)
    conf = os.path.join(directory, "softhsm2.conf")
    with open(conf, "w") as f:
        f.write(f"directories.tokendir = {tokens}\nobjectstore.backend = file\n"
                "log.level = ERROR\n")
    env = dict(os.environ, SOFTHSM2_CONF=conf)
    sh(["softhsm2-util", "--init-token", "--free", "--label", KEY, "--pin", SOFTHSM_PIN,
        "--so-pin", "12345678"], env=env)
    for key_type, label in (("EC:prime256v1", KEY), ("rsa:2048", nginx_backend.RSA_KEY)):
        sh(["pkcs11-tool", "--module", SOFTHSM, "--token-label", KEY, "--login", "--pin",
            SOFTHSM_PIN, "--keypairgen", "--key-type", key_type, "--label", label,
            "--id", label.encode().hex()], env=env)
    yield env


@contextmanager
def software_hsm(directory: str):
    """`p11fast hsm serve` (via p11fast.hsm.testing) with an EC P-256 key `bench` made through
    the HSM's own API."""
    from p11fast.hsm.testing import ADMIN_PASSPHRASE, ADMIN_USER, running_hsm

    with running_hsm(directory) as hsm:
        body = json.dumps({"type": "EC_P256", "mechanisms": ["ECDSA_Signature"],
                           "id": KEY}).encode()
        auth = base64.b64encode(f"{ADMIN_USER}:{ADMIN_PASSPHRASE}".encode()).decode()
        req = urllib.request.Request(f"{hsm.url}/keys/generate", body, method="POST", headers={
            "Content-Type": "application/json", "Authorization": "Basic " + auth})
        # Loopback to the HSM we just started; the module's config pins its certificate.
        with urllib.request.urlopen(req, context=ssl._create_unverified_context()) as r:
            assert r.status == 201, r.status
        yield hsm


def p11fast_env(config: str) -> dict:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("P11FAST_", "P11NETHSM_"))}
    env["P11FAST_CONFIG_FILE"] = config
    # The light mode's snapshots go beside the config, into the run's temporary directory.
    env["XDG_CACHE_HOME"] = os.path.join(os.path.dirname(config), "cache")
    return env


# -- wrk ---------------------------------------------------------------------------------------


def _duration_us(text: str) -> float:
    value, unit = re.fullmatch(r"([\d.]+)(us|ms|s)", text).groups()
    return float(value) * {"us": 1, "ms": 1e3, "s": 1e6}[unit]


def wrk_run(runner: Runner, backend: nginx_backend.Backend, conns: int) -> dict:
    d = max(1, round(runner.args.duration))  # wrk takes whole seconds
    cmd = ["wrk", "-t", str(conns), "-c", str(conns), "-d", f"{d}s", "--latency",
           "-s", os.path.join(HERE, "wrk_sign.lua"), f"{backend.url}/keys/{KEY}/sign"]
    say("$ " + shlex.join(cmd))
    accepted = backend.accepted()
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    done = subprocess.run(cmd, capture_output=True, text=True, timeout=d + 60)
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    runner.raw(f"wrk-c{conns}.txt", cmd, done.stdout + done.stderr)
    out = done.stdout
    found = re.search(r"(\d+) requests in", out)
    if not found:
        say(f"  wrk c={conns} failed: {done.stderr.strip()[-300:]}")
        return {"failed": (out + done.stderr)[-500:], "threads": conns}
    total = int(found.group(1))
    pct = dict(re.findall(r"^\s+(50|99)%\s+(\S+)$", out, re.M))
    non2xx = re.search(r"Non-2xx or 3xx responses: (\d+)", out)
    sock = re.search(r"Socket errors: connect (\d+), read (\d+), write (\d+), timeout (\d+)", out)
    cpu = (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)
    result = {
        "threads": conns, "ops": total,
        "ops_per_s": float(re.search(r"Requests/sec:\s+([\d.]+)", out).group(1)),
        "p50_us": _duration_us(pct["50"]), "p99_us": _duration_us(pct["99"]),
        "cpu_us_per_op": cpu / total * 1e6 if total else 0.0,
        "errors": (int(non2xx.group(1)) if non2xx else 0)
        + (sum(map(int, sock.groups())) if sock else 0),
        "server_accepted": backend.accepted() - accepted - 1,
    }
    say(f"  {'wrk':14} c={conns:<3} {result['ops_per_s']:>9.0f} req/s  "
        f"p50 {result['p50_us']:7.1f} µs  p99 {result['p99_us']:8.1f} µs  "
        f"cpu/op {result['cpu_us_per_op']:6.1f} µs  errors {result['errors']}")
    return result


# -- pkcs11-tool under hyperfine ---------------------------------------------------------------


def tool_commands(module: str, pin: str, digest: str) -> dict[str, list[str]]:
    """The one-process operations docs/design.md times: listing slots, and one ECDSA signature."""
    return {
        "-L": ["pkcs11-tool", "--module", module, "-L"],
        "--sign": ["pkcs11-tool", "--module", module, "--login", "--pin", pin, "--sign",
                   "--mechanism", "ECDSA", "--label", KEY, "--input-file", digest,
                   "--output-file", "/dev/null"],
    }


def tool_runs(runner: Runner, module: str, nginx_env: dict, softhsm_env: dict,
              release: str | None = None) -> dict:
    digest = os.path.join(runner.out, "digest.bin")
    with open(digest, "wb") as f:
        f.write(nginx_backend.DIGEST)
    # The light mode answers -L without Python when a snapshot exists (warm-up runs write it);
    # "no snapshot" is the same build always starting Python, for comparison.
    targets = [("p11fast", module, nginx_backend.OPERATOR_PASSWORD, nginx_env),
               ("p11fast no snapshot", module, nginx_backend.OPERATOR_PASSWORD,
                {**nginx_env, "P11FAST_SNAPSHOT": "off"})]
    if release:
        targets.append(("release wheel", release, nginx_backend.OPERATOR_PASSWORD, nginx_env))
    targets.append(("softhsm2", SOFTHSM, SOFTHSM_PIN, softhsm_env))
    commands = {f"{name} {op}": (cmd, env)
                for name, lib, pin, env in targets
                for op, cmd in tool_commands(lib, pin, digest).items()}
    results = {}
    for name, (cmd, env) in commands.items():
        # Once by hand first: hyperfine would only say "non-zero exit code".
        check = subprocess.run(cmd, env=env, capture_output=True, text=True)
        if check.returncode != 0:
            say(f"  {name}: fails: {check.stdout}{check.stderr}")
            results[name] = {"failed": (check.stdout + check.stderr)[-500:]}
            continue
        slug = "hyperfine-" + name.replace(" ", "").replace("-", "_")
        export = os.path.join(runner.out, slug + ".json")
        hf = ["hyperfine", "-N", "--warmup", "3", "--min-runs", str(runner.args.tool_runs),
              "--export-json", export, "--command-name", name, shlex.join(cmd)]
        done = subprocess.run(hf, env=env, capture_output=True, text=True)
        runner.raw(slug + ".txt", hf, done.stdout + done.stderr)
        with open(export) as f:
            r = json.load(f)["results"][0]
        results[name] = {k: r[k] * 1e3 for k in ("mean", "stddev", "median", "min", "max")}
        results[name]["runs"] = len(r["times"])
        results[name]["command"] = shlex.join(cmd)
        say(f"  {name:16} mean {results[name]['mean']:6.2f} ± {results[name]['stddev']:.2f} ms"
            f"  median {results[name]['median']:6.2f} ms  ({results[name]['runs']} runs)")
    return results


# -- profile -----------------------------------------------------------------------------------


def profile(runner: Runner, module: str, backend: nginx_backend.Backend, env: dict) -> dict:
    """perf (where the CPU time goes, kernel included) and callgrind (instructions per
    signature, independent of this noisy machine's timing), one thread against nginx."""
    result: dict = {}
    base = [runner.p11load, "--module", module, "--label", KEY, "--threads", "1",
            "--port", str(backend.port), "--json"]
    if shutil.which("perf"):
        data = os.path.join(runner.out, "perf.data")
        # -D: start sampling 1 s in, inside the 1.5 s warm-up: the interpreter's start and
        # C_Initialize are not what a signature costs.
        cmd = ["perf", "record", "-F", "4999", "-D", "1000", "-o", data, "--", *base,
               "--duration", "3", "--warmup", "1.5"]
        done = subprocess.run(cmd, env=env, capture_output=True, text=True)
        runner.raw("perf-record.txt", cmd, done.stdout + done.stderr)
        if done.returncode == 0:
            for sort in ("dso", "dso,sym"):
                rep = ["perf", "report", "-i", data, "--stdio", "--no-children",
                       "--sort", sort, "--percent-limit", "0.7"]
                text = sh(rep, env=env)
                runner.raw(f"perf-report-{sort.replace(',', '-')}.txt", rep, text)
                result[f"perf_{sort.replace(',', '_')}"] = [
                    ln for ln in text.splitlines() if ln.strip() and not ln.startswith("#")]
            say("  perf: " + "; ".join(result["perf_dso"][:6]))
    if shutil.which("valgrind"):
        cg = os.path.join(runner.out, "callgrind.out")
        cmd = ["valgrind", "--tool=callgrind", "--toggle-collect=measured_op",
               f"--callgrind-out-file={cg}", *base, "--duration", "3", "--warmup", "1"]
        done = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=600)
        runner.raw("callgrind-run.txt", cmd, done.stdout + done.stderr)
        run = json.loads(done.stdout.splitlines()[-1])
        ops = run["ops"] + run["errors"]
        result["callgrind"] = callgrind_summary(runner, cg, ops)
        say(f"  callgrind: {result['callgrind']['ir_per_op']:,.0f} instructions per signature "
            f"({ops} measured)")
    return result


# Where a one-shot `pkcs11-tool -L` spends its instructions: (function, what it is), inclusive.
COLD_PHASES = (
    ("_dl_start", "the process and pkcs11-tool's own libraries"),
    ("light_initialize", "the loader's C_Initialize before Python: libpython loaded, and in "
     "light mode the snapshot checked, the transport loaded, the pools opened"),
    ("snapshot_load", "of which: reading and checking the snapshot"),
    ("p11f_transport_open", "of which: opening the pools"),
    ("light_get_slot_info", "light mode's C_GetSlotInfo: the presence check (TLS and GET)"),
    ("start_python_locked", "loading libpython and starting the interpreter"),
    ("Py_InitializeFromConfig", "of which: Py_InitializeFromConfig"),
    ("PyImport_ImportModule", "importing the ABI: its extension, libcurl, OpenSSL initialisation"),
    ("dlopen_doit", "of which: loading shared objects"),
    ("__pyx_f_7p11fast_4_abi_C_Initialize",
     "the ABI's C_Initialize: config, logging, pools, the object model"),
    ("__pyx_f_7p11fast_4_abi__bg_main", "the TLS connection, on the background thread"),
    ("__pyx_f_7p11fast_4_abi_C_Finalize", "C_Finalize"),
    ("__run_exit_handlers", "exit: atexit handlers (OpenSSL's cleanup) and destructors"),
)


def cold_start_profile(runner: Runner, module: str, env: dict, tag: str) -> dict:
    """callgrind over one `pkcs11-tool -L`: instructions by phase, independent of machine noise.
    A run before it leaves the snapshot light mode answers from (unless the env turns it off)."""
    cg = os.path.join(runner.out, f"callgrind-cold-L-{tag}.out")
    subprocess.run(["pkcs11-tool", "--module", module, "-L"], env=env, capture_output=True)
    cmd = ["valgrind", "--tool=callgrind", f"--callgrind-out-file={cg}",
           "pkcs11-tool", "--module", module, "-L"]
    done = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=600)
    runner.raw(f"callgrind-cold-L-{tag}-run.txt", cmd, done.stdout + done.stderr)
    ann = ["callgrind_annotate", "--auto=no", "--threshold=100", "--inclusive=yes", cg]
    text = sh(ann)
    runner.raw(f"callgrind-cold-L-{tag}-inclusive.txt", ann, text)
    total = int(re.search(r"^([\d,]+).*PROGRAM TOTALS", text, re.M).group(1).replace(",", ""))
    found: dict[str, int] = {}
    for ir, fn, _obj in _callgrind_functions(text):
        found.setdefault(fn, ir)  # the first (largest) row of a function spanning files
    phases = [(name, what, found.get(name, 0)) for name, what in COLD_PHASES]
    say(f"  cold start ({tag}): {total:,} instructions for pkcs11-tool -L")
    return {"ir_total": total, "phases": phases}


def _callgrind_functions(text: str) -> list[tuple[int, str, str]]:
    """(Ir, function, object) rows of a callgrind_annotate function list."""
    rows = []
    section = text.split("file:function", 1)[1]
    for m in re.finditer(r"^\s*([\d,]+) \([^)]*\)\s+(\S+?)(?: \[(.+)\])?$", section, re.M):
        # A function without [object] is code callgrind could not map (inlined libc helpers).
        obj = os.path.basename(m.group(3)) if m.group(3) else "(unmapped)"
        rows.append((int(m.group(1).replace(",", "")), m.group(2).split(":", 1)[-1], obj))
    return rows


def callgrind_summary(runner: Runner, path: str, ops: int) -> dict:
    """Instructions per measured operation: self cost by object, the heaviest functions, and
    the inclusive cost of the named functions on the call path (libcurl's internal functions
    are stripped in Debian's build and show as addresses)."""
    ann = ["callgrind_annotate", "--auto=no", "--threshold=100"]
    self_text = sh([*ann, "--inclusive=no", path])
    runner.raw("callgrind-self.txt", ann + ["--inclusive=no", path], self_text)
    incl_text = sh([*ann, "--inclusive=yes", path])
    runner.raw("callgrind-inclusive.txt", ann + ["--inclusive=yes", path], incl_text)
    total = int(re.search(r"^([\d,]+).*PROGRAM TOTALS", self_text, re.M).group(1)
                .replace(",", ""))
    by_obj: dict[str, int] = {}
    functions = _callgrind_functions(self_text)
    for ir, _fn, obj in functions:
        by_obj[obj] = by_obj.get(obj, 0) + ir
    inclusive, seen = [], set()
    for ir, fn, obj in _callgrind_functions(incl_text):
        # Listed once per source file it spans (inlined headers): keep the first, largest.
        if fn.startswith("0x") or fn in seen or fn in ("clone", "start_thread", "worker_main"):
            continue
        seen.add(fn)
        inclusive.append((ir, fn, obj))
    return {
        "ops": ops,
        "ir_total": total,
        "ir_per_op": total / ops if ops else 0,
        "by_object": sorted(((ir / ops, obj) for obj, ir in by_obj.items()), reverse=True),
        "top_self": [(ir / ops, fn, obj) for ir, fn, obj in functions[:20]],
        "inclusive": [(ir / ops, fn, obj) for ir, fn, obj in inclusive[:30]],
    }


# -- the report --------------------------------------------------------------------------------

TARGETS = (
    ("nginx", "p11fast → nginx (canned)"),
    ("hsm", "p11fast → `p11fast hsm serve`"),
    ("softhsm", "SoftHSM2 (local token)"),
    ("wrk", "wrk → nginx (HTTP floor)"),
)


def _cell(r: dict | None, key: str, fmt: str = "{:,.0f}") -> str:
    if not r:
        return "—"
    if "failed" in r:
        return "failed"
    return fmt.format(r[key])


def report(summary: dict) -> str:
    m, a, s = summary["machine"], summary["args"], summary["results"]
    threads = a["threads"]
    lines = [
        "# Benchmark run",
        "",
        f"- date: {m['date']}",
        f"- commit: {m['commit']}",
        f"- machine: {m['cpu']}, {m['cores']} cores, kernel {m['kernel']}; load average "
        f"{m['load_average']} at the start, {m['load_average_end']} at the end",
        f"- `uname -a`: {m['uname']}",
        f"- command: `{a['command']}`",
        f"- {a['duration']} s measured per point after {a['warmup']} s warm-up; ECDSA P-256 on a "
        "32-byte digest (`CKM_ECDSA`), each thread with its own session",
        f"- tools: {', '.join(f'{k} {v}' for k, v in m['tools'].items())}",
        "",
    ]
    head = "| target | " + " | ".join(f"{t} thr" for t in threads) + " |"
    sep = "|---|" + "---|" * len(threads)

    def rows(metric: str, fmt: str = "{:,.0f}") -> list[str]:
        out = []
        for key, title in TARGETS:
            if key in s:
                out.append(f"| {title} | " + " | ".join(
                    _cell(s[key].get(t), metric, fmt) for t in threads) + " |")
        return out

    def ratio(num: str, den: str, title: str) -> str | None:
        if num not in s or den not in s:
            return None
        cells = []
        for t in threads:
            n, d = s[num].get(t), s[den].get(t)
            ok = n and d and "failed" not in n and "failed" not in d and d["ops_per_s"]
            cells.append(f"{n['ops_per_s'] / d['ops_per_s']:.2f}" if ok else "—")
        return f"| {title} | " + " | ".join(cells) + " |"

    lines += ["## Throughput, ops/s", "", head, sep, *rows("ops_per_s")]
    lines += [r for r in (ratio("nginx", "wrk", "*p11fast→nginx ÷ wrk floor*"),
                          ratio("nginx", "softhsm", "*p11fast→nginx ÷ SoftHSM2*"),
                          ratio("hsm", "softhsm", "*p11fast→hsm serve ÷ SoftHSM2*")) if r]
    lines += ["", "## Latency p50 / p99, µs", "", head, sep]
    for key, title in TARGETS:
        if key in s:
            lines.append(f"| {title} | " + " | ".join(
                "failed" if "failed" in s[key].get(t, {}) else
                f"{s[key][t]['p50_us']:.0f} / {s[key][t]['p99_us']:.0f}" if t in s[key] else "—"
                for t in threads) + " |")
    lines += ["", "## Client CPU per operation, µs (user + sys of the client process ÷ ops)",
              "", head, sep, *rows("cpu_us_per_op", "{:.1f}")]
    lines += ["", "## Connections: opened during set-up + warm-up / during the measured window / "
              "established at the end (server accepted)", "", head, sep]
    for key, title in TARGETS[:3]:
        if key in s:
            cells = []
            for t in threads:
                r = s[key].get(t)
                if not r or "failed" in r:
                    cells.append("—")
                    continue
                acc = f" ({r['server_accepted']})" if "server_accepted" in r else ""
                cells.append(f"{r['conn_opened_setup']} / {r['conn_opened_measured']} / "
                             f"{r['conn_established_end']}{acc}")
            lines.append(f"| {title} | " + " | ".join(cells) + " |")
    lines += ["", "## Errors in the measured window", "", head, sep]
    for key, title in TARGETS:
        if key in s:
            lines.append(f"| {title} | " + " | ".join(
                "failed" if "failed" in s[key].get(t, {"failed": 1}) else
                (str(s[key][t]["errors"]) + (" " + json.dumps(s[key][t]["errors_by_ckr"])
                                             if s[key][t].get("errors_by_ckr") else ""))
                for t in threads) + " |")
    if "mechs" in s:
        lines += ["", "## Other mechanisms, p11fast → nginx, 8 threads", "",
                  "| mechanism | ops/s | p50 µs | p99 µs | CPU µs/op | errors |",
                  "|---|---|---|---|---|---|"]
        for mech, r in s["mechs"].items():
            if "failed" in r:
                lines.append(f"| {mech} | failed: {r['failed'][-120:]} | | | | |")
            else:
                errs = json.dumps(r["errors_by_ckr"]) if r["errors"] else "0"
                lines.append(f"| {mech} | {r['ops_per_s']:,.0f} | {r['p50_us']:.0f} | "
                             f"{r['p99_us']:.0f} | {r['cpu_us_per_op']:.1f} | {errs} |")
    if "tool" in s:
        lines += ["", "## `pkcs11-tool`, one process per operation (hyperfine), ms", "",
                  "| command | mean ± σ | median | min | runs |", "|---|---|---|---|---|"]
        for name, r in s["tool"].items():
            if "failed" in r:
                lines.append(f"| {name} | failed | | | |")
            else:
                lines.append(f"| {name} | {r['mean']:.2f} ± {r['stddev']:.2f} | "
                             f"{r['median']:.2f} | {r['min']:.2f} | {r['runs']} |")
    if "oneshot" in s:
        lines += oneshot.report(s["oneshot"])
    lines += ["", *goals(s)]
    if "profile" in s and "callgrind" in s["profile"]:
        cg = s["profile"]["callgrind"]
        lines += ["", f"## Instructions per signature (callgrind, 1 thread → nginx): "
                  f"{cg['ir_per_op']:,.0f}", "", "| object | instructions/op |", "|---|---|"]
        lines += [f"| {obj} | {ir:,.0f} |" for ir, obj in cg["by_object"] if ir >= 100]
        lines += ["", "| function, inclusive (named ones on the call path) | object | "
                  "instructions/op |", "|---|---|---|"]
        lines += [f"| `{fn}` | {obj} | {ir:,.0f} |" for ir, fn, obj in cg["inclusive"]]
        lines += ["", "| function, self | object | instructions/op |", "|---|---|---|"]
        lines += [f"| `{fn}` | {obj} | {ir:,.0f} |" for ir, fn, obj in cg["top_self"]]
    if "profile" in s and "cold" in s["profile"]:
        cold = s["profile"]["cold"]
        builds = list(cold)
        lines += ["", "## Cold start: one `pkcs11-tool -L` under callgrind, instructions", "",
                  "| phase (function, inclusive) | " + " | ".join(builds) + " |",
                  "|---|" + "---|" * len(builds),
                  "| the whole run | " + " | ".join(f"{cold[b]['ir_total']:,}" for b in builds)
                  + " |"]
        for i, (name, what, _ir) in enumerate(cold[builds[0]]["phases"]):
            cells = []
            for b in builds:
                ir = cold[b]["phases"][i][2]
                cells.append(f"{ir:,} ({100 * ir / cold[b]['ir_total']:.0f} %)")
            lines.append(f"| {what} (`{name}`) | " + " | ".join(cells) + " |")
    if "profile" in s and "perf_dso" in s["profile"]:
        lines += ["", "## perf, 1 thread → nginx: samples by object", "", "```",
                  *s["profile"]["perf_dso"], "```"]
    return "\n".join(lines) + "\n"


def goals(s: dict) -> list[str]:
    """docs/design.md's goal table with this run's p11fast figures."""
    n, w, sh2, tool = s.get("nginx", {}), s.get("wrk", {}), s.get("softhsm", {}), s.get("tool", {})

    def get(d: dict, t: int, k: str):
        r = d.get(t)
        return None if not r or "failed" in r else r[k]

    def fmt(v, f="{:,.0f}"):
        return "—" if v is None else f.format(v)

    def met(v, goal, le=False):
        if v is None:
            return "—"
        return "yes" if (v <= goal if le else v >= goal) else "**no**"

    t_ms = {k: (None if "failed" in v else v["median"]) for k, v in tool.items()}
    rows = [
        ("1 thread, ops/s", get(n, 1, "ops_per_s"), get(w, 1, "ops_per_s"),
         get(sh2, 1, "ops_per_s"), "≥ 8k", met(get(n, 1, "ops_per_s"), 8000)),
        ("1 thread, p50 µs", get(n, 1, "p50_us"), get(w, 1, "p50_us"), get(sh2, 1, "p50_us"),
         "≤ 125", met(get(n, 1, "p50_us"), 125, le=True)),
        ("8 threads, ops/s", get(n, 8, "ops_per_s"), get(w, 8, "ops_per_s"),
         get(sh2, 8, "ops_per_s"), "≥ 52k", met(get(n, 8, "ops_per_s"), 52000)),
        ("client CPU per op at 8, µs", get(n, 8, "cpu_us_per_op"), get(w, 8, "cpu_us_per_op"),
         get(sh2, 8, "cpu_us_per_op"), "≤ 20", met(get(n, 8, "cpu_us_per_op"), 20, le=True)),
        ("`pkcs11-tool -L`, ms (median)", t_ms.get("p11fast -L"), None, t_ms.get("softhsm2 -L"),
         "≤ 12", met(t_ms.get("p11fast -L"), 12, le=True)),
        ("`pkcs11-tool --sign`, ms (median)", t_ms.get("p11fast --sign"), None,
         t_ms.get("softhsm2 --sign"), "≤ 16", met(t_ms.get("p11fast --sign"), 16, le=True)),
    ]
    if "p11fast no snapshot -L" in t_ms:
        rows += [
            ("`pkcs11-tool -L`, snapshot off, ms", t_ms["p11fast no snapshot -L"], None,
             t_ms.get("softhsm2 -L"), "", ""),
            ("`pkcs11-tool --sign`, snapshot off, ms", t_ms.get("p11fast no snapshot --sign"),
             None, t_ms.get("softhsm2 --sign"), "", ""),
        ]
    if "release wheel -L" in t_ms:
        rows += [
            ("`pkcs11-tool -L`, release wheel, ms", t_ms["release wheel -L"], None,
             t_ms.get("softhsm2 -L"), "≤ 12", met(t_ms["release wheel -L"], 12, le=True)),
            ("`pkcs11-tool --sign`, release wheel, ms", t_ms.get("release wheel --sign"), None,
             t_ms.get("softhsm2 --sign"), "≤ 16",
             met(t_ms.get("release wheel --sign"), 16, le=True)),
        ]
    out = ["## docs/design.md's table from this run", "",
           "| figure | p11fast → nginx | wrk floor | SoftHSM2 | goal | met |",
           "|---|---|---|---|---|---|"]
    for name, v, floor, ref, goal, ok in rows:
        f = "{:,.1f}" if "µs" in name or "ms" in name else "{:,.0f}"
        out.append(f"| {name} | {fmt(v, f)} | {fmt(floor, f)} | {fmt(ref, f)} | {goal} | {ok} |")
    err64 = get(n, 64, "errors")
    if err64 is not None:
        out.append(f"| errors at 64 threads | {err64} | | | 0 | {met(err64, 0, le=True)} |")
    return out


MARKER = "<!-- generated by benchmarks/run_all.py --write-results: everything below -->"


def write_results(path: str, md: str) -> None:
    text = open(path).read() if os.path.exists(path) else ""
    head = text.split(MARKER, 1)[0].rstrip() if MARKER in text else text.rstrip()
    with open(path, "w") as f:
        f.write((head + "\n\n" if head else "") + MARKER + "\n\n" + md)


# -- main --------------------------------------------------------------------------------------


def parse_args(argv: list[str]) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    p.add_argument("--duration", type=float, default=5.0, help="measured seconds per point")
    p.add_argument("--warmup", type=float, default=1.0, help="warm-up seconds per point")
    p.add_argument("--threads", default="1,2,8,32,64", help="thread counts (wrk: connections)")
    p.add_argument("--only", default=",".join(PARTS), help=f"comma list of: {', '.join(PARTS)}")
    p.add_argument("--module", help="the p11fast library (default: this Python's p11fast)")
    p.add_argument("--release-module", help="a second p11fast library for the `tool` part: "
                   "the release wheel's (run.sh --release-wheel builds and installs it)")
    p.add_argument("--nginx-workers", type=int, default=2)
    p.add_argument("--tool-runs", type=int, default=40, help="hyperfine --min-runs")
    p.add_argument("--oneshot-runs", type=int, default=60,
                   help="rounds of the oneshot part (each runs every command once)")
    p.add_argument("--out", default=os.path.join(HERE, "out"))
    p.add_argument("--write-results", metavar="FILE",
                   help="also put the tables into FILE below its generated-section marker "
                   "(keeps the hand-written text above it), e.g. benchmarks/RESULTS.md")
    args = p.parse_args(argv)
    args.threads = [int(t) for t in args.threads.split(",")]
    args.only = [x for x in args.only.split(",") if x]
    unknown = set(args.only) - set(PARTS)
    if unknown:
        p.error(f"unknown parts: {', '.join(sorted(unknown))}")
    if not args.module:
        import p11fast

        args.module = p11fast.module_path()
    return args


def main(argv: list[str]) -> int:
    args = parse_args(argv)
    stamp = datetime.datetime.now(datetime.timezone.utc).strftime("%Y%m%dT%H%M%SZ")
    out = os.path.join(args.out, stamp)
    os.makedirs(out)
    latest = os.path.join(args.out, "latest")
    if os.path.islink(latest):
        os.unlink(latest)
    os.symlink(stamp, latest)

    command = shlex.join([os.path.relpath(sys.argv[0], ROOT), *argv])
    info = machine()
    say(f"# {info['date']}  commit {info['commit']}", f"# {info['cpu']}, {info['cores']} cores",
        f"# {info['uname']}", f"# $ {command}", f"# module {args.module}", f"# raw output: {out}")
    runner = Runner(args, out, build_p11load(out))
    results: dict = {}
    only = set(args.only)
    t0 = time.monotonic()
    with ExitStack() as stack:
        tmp = stack.enter_context(tempfile.TemporaryDirectory(prefix="p11bench-"))
        backend = None
        if only & {"nginx", "mechs", "wrk", "tool", "oneshot", "profile"}:
            backend = stack.enter_context(nginx_backend.nginx_backend(
                os.path.join(tmp, "nginx"), workers=args.nginx_workers))
            say(f"## nginx backend {backend.url} ({args.nginx_workers} workers), "
                f"config {backend.config_path}")
            nginx_env = p11fast_env(backend.config_path)
        softhsm_env = None
        if only & {"softhsm", "tool", "oneshot"}:
            softhsm_env = stack.enter_context(softhsm_token(os.path.join(tmp, "softhsm")))
        # The sweeps interleave: every thread count runs each target back to back, so a burst
        # of noise from the rest of this shared machine hits neighbours in the ratios alike.
        sweeps = []
        if "nginx" in only:
            sweeps.append(("nginx", lambda t: runner.p11load_run(
                "p11fast-nginx", args.module, nginx_env, t, "--label", KEY, port=backend.port,
                backend=backend)))
        if "wrk" in only:
            sweeps.append(("wrk", lambda t: wrk_run(runner, backend, t)))
        if "softhsm" in only:
            sweeps.append(("softhsm", lambda t: runner.p11load_run(
                "softhsm2", SOFTHSM, softhsm_env, t, "--label", KEY, "--pin", SOFTHSM_PIN)))
        if "hsm" in only:
            hsm = stack.enter_context(software_hsm(os.path.join(tmp, "hsm")))
            say(f"## software HSM {hsm.url}")
            hsm_env = p11fast_env(hsm.config_path)
            sweeps.append(("hsm", lambda t: runner.p11load_run(
                "p11fast-hsm", args.module, hsm_env, t, "--label", KEY, port=hsm.port)))
        for t in args.threads:
            say(f"## {t} thread(s) / connection(s); load average {load_average()}")
            for key, run in sweeps:
                results.setdefault(key, {})[t] = run(t)
        if "mechs" in only:
            say("## other mechanisms, p11fast → nginx, 8 threads")
            ct = os.path.join(backend.directory, "rsa.ct")
            results["mechs"] = {
                mech: runner.p11load_run(f"p11fast-nginx-{mech}", args.module, nginx_env, 8,
                                         "--mech", mech, *extra, port=backend.port,
                                         backend=backend)
                for mech, extra in (
                    ("ecdsa-sha256", ("--label", KEY)),
                    ("rsa-sha256", ("--label", nginx_backend.RSA_KEY)),
                    ("rsa-decrypt", ("--label", nginx_backend.RSA_KEY, "--input", ct)),
                )
            }
        if "tool" in only:
            say("## pkcs11-tool, one process per operation")
            results["tool"] = tool_runs(runner, args.module, nginx_env, softhsm_env,
                                        args.release_module)
        if "oneshot" in only:
            say("## one-shot pkcs11-tool, interleaved against SoftHSM2")
            results["oneshot"] = oneshot.run(out, args.module, args.release_module, nginx_env,
                                             softhsm_env, SOFTHSM, SOFTHSM_PIN,
                                             args.oneshot_runs, say)
        if "profile" in only:
            say("## profile, 1 thread → nginx")
            results["profile"] = profile(runner, args.module, backend, nginx_env)
            if shutil.which("valgrind"):
                full_env = {**nginx_env, "P11FAST_SNAPSHOT": "off"}
                builds = [("source build", args.module, "source")]
                if args.release_module:
                    builds.append(("release wheel", args.release_module, "release"))
                results["profile"]["cold"] = {}
                for name, module, tag in builds:
                    for mode, env in (("light mode", nginx_env), ("snapshot off", full_env)):
                        results["profile"]["cold"][f"{name}, {mode}"] = cold_start_profile(
                            runner, module, env, f"{tag}-{mode.split()[0]}")

    info["load_average_end"] = load_average()
    summary = {"machine": info, "results": results, "elapsed_s": time.monotonic() - t0,
               "args": {"command": command, "duration": args.duration, "warmup": args.warmup,
                        "threads": args.threads, "module": args.module,
                        "nginx_workers": args.nginx_workers}}
    with open(os.path.join(out, "summary.json"), "w") as f:
        json.dump(summary, f, indent=1)
    md = report(summary)
    with open(os.path.join(out, "results.md"), "w") as f:
        f.write(md)
    if args.write_results:
        write_results(args.write_results, md)
    say("", md, f"# {summary['elapsed_s']:.0f} s; raw output and results.md in {out}")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
