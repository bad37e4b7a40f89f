"""One-shot processes (issue 15): `pkcs11-tool -L`, `-M`, `--sign` with ECDSA P-256 and with RSA
2048 (login, find by `--id`, sign) and the alternating `-L`/`--sign` worst case, for p11fast (the
source build, the release wheel) and SoftHSM2 in the same run; then where each millisecond of
one `-L` and one `--sign` goes. Run as the `oneshot` part of run_all.py:

    benchmarks/run.sh --only oneshot [--release-wheel] [--oneshot-runs 60]

Timing: every command is one process, spawned with posix_spawn (output to /dev/null) and reaped
with wait4, so each sample has its wall time and the CPU time (user + sys) the kernel charged
the process. The series run in turn, round after round, in a shuffled order per round (as
cold_ab.py does): on this shared 2-core machine the load drifts over seconds (issue 15's two
hyperfine runs put p11fast's `-L` at 11.3 and 8.0 ms), and hyperfine, which times one command
after the other, hands each command a different stretch of that drift. Interleaved, every series
meets the same drift, and each round gives a paired ratio (p11fast ÷ SoftHSM2 of the same round),
whose median is reported beside the ratio of the medians. The CPU time is the steadier figure
when other work competes for the cores; wall time is what the goal is about.

Light mode keeps state between processes (the snapshot, its `.full` mark and the recorded
inventory, p11fast/snapshot.py and p11fast/abi/recorded.pxd), so each series has its own
XDG_CACHE_HOME: a `-L` loop never starts Python, and a `--sign` loop does so only in its first
process (which records the key the later ones find compiled), as in the alternating series.
"""

from __future__ import annotations

import json
import os
import random
import re
import shlex
import statistics
import subprocess
import sys
import time
from dataclasses import dataclass, field

import nginx_backend

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(HERE)
EC_ID, RSA_ID = nginx_backend.EC_KEY.encode().hex(), nginx_backend.RSA_KEY.encode().hex()
# issue 15: × SoftHSM2's, for the release wheel; -M is a listing like -L (not in the issue)
GOALS = {"-L": 0.8, "-M": 0.8, "--sign": 0.7}


def tool_commands(module: str, pin: str, digest: str) -> dict[str, list[str]]:
    """pkcs11-tool's one-shot operations, keys found by CKA_ID as `pkcs11-tool --sign` does."""
    def sign(mech: str, key_id: str) -> list[str]:
        return ["pkcs11-tool", "--module", module, "--login", "--pin", pin, "--sign",
                "--mechanism", mech, "--id", key_id, "--input-file", digest,
                "--output-file", "/dev/null"]

    return {"-L": ["pkcs11-tool", "--module", module, "-L"],
            "-M": ["pkcs11-tool", "--module", module, "-M"],
            "--sign ECDSA": sign("ECDSA", EC_ID), "--sign RSA": sign("RSA-PKCS", RSA_ID)}


@dataclass
class Target:
    name: str
    module: str
    pin: str
    env: dict


@dataclass
class Series:
    """One target's commands that share one cache directory, run in this order each round."""
    name: str
    target: Target
    ops: list[tuple[str, list[str]]]
    env: dict = field(default_factory=dict)


def spawn_timed(cmd: list[str], env: dict) -> tuple[float, float, int]:
    """(wall ms, CPU ms, exit status) of one process."""
    actions = [(os.POSIX_SPAWN_OPEN, 1, os.devnull, os.O_WRONLY, 0),
               (os.POSIX_SPAWN_OPEN, 2, os.devnull, os.O_WRONLY, 0)]
    start = time.perf_counter_ns()
    pid = os.posix_spawnp(cmd[0], cmd, env, file_actions=actions)
    _, status, usage = os.wait4(pid, 0)
    wall = (time.perf_counter_ns() - start) / 1e6
    return wall, (usage.ru_utime + usage.ru_stime) * 1e3, os.waitstatus_to_exitcode(status)


def build_series(targets: list[Target], digest: str, cache_root: str) -> list[Series]:
    series = []
    for t in targets:
        cmds = tool_commands(t.module, t.pin, digest)
        ops = [[(op, cmd)] for op, cmd in cmds.items()]
        ops.append([("alternating -L", cmds["-L"]), ("alternating --sign", cmds["--sign ECDSA"])])
        for group in ops:
            name = f"{t.name} {group[0][0]}"
            cache = os.path.join(cache_root, re.sub(r"[^\w]+", "-", name))
            series.append(Series(name, t, group, {**t.env, "XDG_CACHE_HOME": cache}))
    return series


def check_commands(series: list[Series]) -> dict[str, str]:
    """Each command once by hand (a failure would otherwise be a fast sample); also the first
    run that writes light mode's snapshot. Returns series name -> failure text."""
    failed = {}
    for s in series:
        for _op, cmd in s.ops:
            done = subprocess.run(cmd, env=s.env, capture_output=True, text=True, timeout=120)
            if done.returncode != 0:
                failed[s.name] = (done.stdout + done.stderr)[-500:]
    return failed


def interleaved(series: list[Series], rounds: int, warmup: int,
                seed: int = 15) -> dict[str, list[tuple[float, float]]]:
    """Samples (wall ms, CPU ms) per "target op", the series in a shuffled order each round."""
    rng = random.Random(seed)
    # Keys in the series' order, whatever order the rounds run them in: the report's order.
    samples: dict[str, list[tuple[float, float]]] = {
        f"{s.target.name} {op}": [] for s in series for op, _cmd in s.ops}
    for round_ in range(warmup + rounds):
        order = series[:]
        rng.shuffle(order)
        for s in order:
            for op, cmd in s.ops:
                wall, cpu, code = spawn_timed(cmd, s.env)
                if code != 0:
                    raise RuntimeError(f"{shlex.join(cmd)} exited {code} in round {round_}")
                if round_ >= warmup:
                    samples[f"{s.target.name} {op}"].append((wall, cpu))
    return samples


def summarise(samples: dict[str, list[tuple[float, float]]]) -> dict[str, dict]:
    out = {}
    for key, pairs in samples.items():
        wall = [w for w, _ in pairs]
        cpu = [c for _, c in pairs]
        out[key] = {"median": statistics.median(wall), "min": min(wall),
                    "p90": sorted(wall)[int(0.9 * (len(wall) - 1))],
                    "cpu_median": statistics.median(cpu), "runs": len(wall), "wall": wall,
                    "cpu": cpu}
    return out


def ratios(summary: dict[str, dict], reference: str = "softhsm2") -> list[dict]:
    """Each p11fast figure against SoftHSM2's same op: ratio of medians, median of the paired
    per-round ratios, ratio of CPU medians."""
    rows = []
    for key, r in summary.items():
        name, op = split_key(key)
        ref = summary.get(f"{reference} {op}")
        if name == reference or not ref:
            continue
        paired = [a / b for a, b in zip(r["wall"], ref["wall"], strict=True)]
        goal = GOALS[op.split()[-1] if op.split()[-1] in GOALS else "--sign"]
        rows.append({"target": name, "op": op, "ratio": r["median"] / ref["median"],
                     "paired": statistics.median(paired),
                     "cpu_ratio": r["cpu_median"] / ref["cpu_median"], "goal": goal})
    return rows


def split_key(key: str) -> tuple[str, str]:
    m = re.match(r"(.*?) ((?:alternating )?(?:-L|-M|--sign(?: ECDSA| RSA)?))$", key)
    return m.group(1), m.group(2)


# -- where the milliseconds go -----------------------------------------------------------------

# (function, what it is, depth): inclusive instructions of one process under callgrind.
PHASES = (
    ("_dl_start", "process start: ld.so and pkcs11-tool's own libraries", 0),
    ("dlopen_doit", "every dlopen (the module, libpython, extensions, libcurl, OpenSSL)", 0),
    ("_dl_relocate_object", "of all loading: relocation (startup and dlopen)", 1),
    ("_dl_lookup_symbol_x", "of which: symbol lookup", 2),
    ("_dl_map_object", "of all loading: finding and mapping files", 1),
    ("_dl_init", "of all loading: constructors", 1),
    ("C_Initialize", "C_Initialize (the loader's)", 0),
    ("snapshot_load", "reading and checking the snapshot", 1),
    ("open_libpython", "loading libpython (not started)", 1),
    ("load_transport_locked", "loading the ABI's extension, libcurl, OpenSSL; their set-up", 1),
    ("curl_global_init", "of which: curl_global_init (OpenSSL's initialisation)", 2),
    ("p11f_transport_open", "opening the pools from the snapshot", 1),
    ("initialize_abi", "starting Python and the ABI (at C_Initialize: the .full mark)", 1),
    ("Py_InitializeFromConfig", "of which: the interpreter's start", 2),
    ("import_abi", "of which: importing the ABI (its extension's init, modules)", 2),
    ("_imp_create_dynamic", "of which: loading extension modules", 3),
    ("__pyx_f_7p11fast_4_abi_C_Initialize", "of which: the ABI's C_Initialize (config, pools)",
     2),
    ("__pyx_f_7p11fast_4_abi__bg_main", "the transport's background thread", 0),
    ("curl_easy_perform", "every curl_easy_perform: connection set-up, TLS, presence GET", 0),
    ("SSL_CTX_new", "TLS, wherever it runs: creating an SSL_CTX (OpenSSL 3 fetches)", 0),
    ("SSL_do_handshake", "TLS, wherever it runs: handshakes", 0),
    ("OSSL_DECODER_CTX_new_for_pkey", "TLS: setting up a decoder for the server's key", 1),
    ("C_GetInfo", "C_GetInfo", 0),
    ("C_GetSlotList", "C_GetSlotList", 0),
    ("C_GetSlotInfo", "C_GetSlotInfo", 0),
    ("C_GetTokenInfo", "C_GetTokenInfo", 0),
    ("C_GetMechanismList", "C_GetMechanismList", 0),
    ("C_OpenSession", "C_OpenSession (light: the ABI's compiled session code)", 0),
    ("C_Login", "C_Login (light: compiled, one GET /keys)", 0),
    ("C_FindObjectsInit", "C_FindObjectsInit (GET /keys/{id})", 0),
    ("C_FindObjects", "C_FindObjects", 0),
    ("C_GetAttributeValue", "C_GetAttributeValue", 0),
    ("C_SignInit", "C_SignInit", 0),
    ("C_Sign", "C_Sign", 0),
    ("C_CloseSession", "C_CloseSession", 0),
    ("C_Finalize", "C_Finalize", 0),
    ("__run_exit_handlers", "exit: atexit handlers and destructors", 0),
)


def callgrind_phases(out: str, tag: str, cmd: list[str], env: dict) -> dict:
    from run_all import _callgrind_functions

    cg = os.path.join(out, f"callgrind-oneshot-{tag}.out")
    run = ["valgrind", "--tool=callgrind", f"--callgrind-out-file={cg}", *cmd]
    done = subprocess.run(run, env=env, capture_output=True, text=True, timeout=600)
    write_raw(out, f"callgrind-oneshot-{tag}-run.txt", run, done.stdout + done.stderr)
    ann = ["callgrind_annotate", "--auto=no", "--threshold=100", "--inclusive=yes", cg]
    text = subprocess.run(ann, capture_output=True, text=True, check=True).stdout
    write_raw(out, f"callgrind-oneshot-{tag}-inclusive.txt", ann, text)
    total = int(re.search(r"^([\d,]+).*PROGRAM TOTALS", text, re.M).group(1).replace(",", ""))
    found: dict[str, int] = {}
    for ir, fn, _obj in _callgrind_functions(text):
        found.setdefault(fn, ir)  # the first (largest) row of a function spanning files
    return {"ir_total": total, "phases": {name: found.get(name, 0) for name, _w, _d in PHASES},
            "command": shlex.join(cmd)}


def loaded_objects(out: str, tag: str, cmd: list[str], env: dict) -> dict:
    """LD_DEBUG=files,statistics of one process: the shared objects loaded at start-up and after
    the module's dlopen (with their mapped size and relocation entries), and ld.so's start-up
    statistics."""
    prefix = os.path.join(out, f"ld-debug-{tag}")
    subprocess.run(cmd, env={**env, "LD_DEBUG": "files,statistics", "LD_DEBUG_OUTPUT": prefix},
                   capture_output=True, timeout=120)
    logs = [p for p in os.listdir(out) if p.startswith(os.path.basename(prefix) + ".")]
    text = "".join(open(os.path.join(out, p)).read() for p in logs)
    paths = {os.path.basename(p): p for p in re.findall(r"calling (?:init|fini): (/\S+)", text)}
    objects, after_module = [], False
    for m in re.finditer(r"file=(\S+) \[0\];\s+(needed by|dynamically loaded by) (\S+)", text):
        name, how = m.group(1), m.group(2)
        if how == "dynamically loaded by" and name.endswith("libp11fast.so"):
            after_module = True
        path = name if name.startswith("/") else paths.get(os.path.basename(name), name)
        if any(o["path"] == path for o in objects):
            continue
        objects.append({"path": path, "after_module": after_module, **elf_facts(path)})
    stats = {k: int(v) for k, v in re.findall(
        r"(number of relocations|number of relocations from cache|number of relative "
        r"relocations): (\d+)", text)}  # fmt: skip
    cycles = re.search(r"total startup time in dynamic loader: (\d+) cycles", text)
    stats["startup cycles"] = int(cycles.group(1)) if cycles else 0
    return {"objects": objects, "ld_statistics": stats}


def elf_facts(path: str) -> dict:
    """File size and relocation entries (symbolic / relative) of one shared object."""
    if not os.path.exists(path):
        return {"size": 0, "symbolic": 0, "relative": 0}
    rel = subprocess.run(["readelf", "-rW", path], capture_output=True, text=True).stdout
    relative = len(re.findall(r"R_X86_64_RELATIVE", rel))
    total = len(re.findall(r"R_X86_64_\w+", rel))
    return {"size": os.path.getsize(path), "symbolic": total - relative, "relative": relative}


# A ctypes host: the loader adopts an interpreter already running in the host, so this
# interpreter's `-X importtime` shows what the module imports during each call.
IMPORT_HOST = r"""
import ctypes, sys
module, pin, key_id = sys.argv[1], sys.argv[2].encode(), bytes.fromhex(sys.argv[3])
lib = ctypes.CDLL(module)
U = ctypes.c_ulong
class Attr(ctypes.Structure): _fields_ = [("t", U), ("p", ctypes.c_void_p), ("n", U)]
class Mech(ctypes.Structure): _fields_ = [("m", U), ("p", ctypes.c_void_p), ("n", U)]
def call(name, *args):
    print("-- " + name, file=sys.stderr, flush=True)
    rv = getattr(lib, name)(*args)
    assert rv == 0, (name, hex(rv))
session, key, count = U(), U(), U()
cls = U(3)
tmpl = (Attr * 2)(Attr(0, ctypes.cast(ctypes.byref(cls), ctypes.c_void_p), 8),
                  Attr(0x102, ctypes.cast(ctypes.c_char_p(key_id), ctypes.c_void_p), len(key_id)))
digest, sig, siglen = bytes(range(1, 33)), ctypes.create_string_buffer(512), U(512)
call("C_Initialize", None)
call("C_GetSlotList", ctypes.c_ubyte(0), None, ctypes.byref(count))
call("C_OpenSession", U(0), U(4), None, None, ctypes.byref(session))
call("C_Login", session, U(1), pin, U(len(pin)))
call("C_FindObjectsInit", session, tmpl, U(2))
call("C_FindObjects", session, ctypes.byref(key), U(1), ctypes.byref(count))
call("C_FindObjectsFinal", session)
call("C_SignInit", session, ctypes.byref(Mech(0x1041, None, 0)), key)
call("C_Sign", session, digest, U(32), sig, ctypes.byref(siglen))
call("C_CloseSession", session)
call("C_Finalize", None)
print("-- end", file=sys.stderr, flush=True)
"""


def import_profile(out: str, module: str, pin: str, env: dict) -> dict:
    """-X importtime of the modules each PKCS#11 call of a one-shot ECDSA signature imports."""
    cmd = [sys.executable, "-X", "importtime", "-c", IMPORT_HOST, module, pin, EC_ID]
    done = subprocess.run(cmd, env={**env, "P11FAST_SNAPSHOT": "off"}, capture_output=True,
                          text=True, timeout=120)
    write_raw(out, "importtime.txt", cmd, done.stdout + done.stderr)
    calls: dict[str, dict] = {}
    current = None
    for line in done.stderr.splitlines():
        if line.startswith("-- "):
            current = line[3:]
            calls.setdefault(current, {"modules": 0, "us": 0, "top": []})
            continue
        m = re.match(r"import time:\s+(\d+) \|\s+(\d+) \|( *)(\S+)", line)
        if not m or current is None:
            continue
        c = calls[current]
        c["modules"] += 1
        if len(m.group(3)) == 1:  # a top-level import (nested ones are indented)
            c["us"] += int(m.group(2))
            c["top"].append((int(m.group(2)), m.group(4)))
    for c in calls.values():
        c["top"] = sorted(c["top"], reverse=True)[:6]
    return {"calls": {k: v for k, v in calls.items() if v["modules"]}, "ok": done.returncode == 0,
            "command": shlex.join(cmd[:3] + ["IMPORT_HOST", *cmd[4:]])}


def build_host(out: str) -> str:
    exe = os.path.join(out, "oneshot_host")
    cmd = ["cc", "-O2", "-Wall", "-Wextra", "-Werror", f"-I{ROOT}/include",
           os.path.join(ROOT, "tests", "module", "oneshot_host.c"), "-o", exe, "-ldl",
           "-lpthread"]
    subprocess.run(cmd, check=True)
    return exe


HOST_FLOWS = {
    "-L": ["init", "info", "slots", "slot", "token", "final"],
    "--sign ECDSA": ["init", "slots", "slot", "token", "open",
                     "login:{pin}", f"find:{EC_ID}", "sign:ecdsa", "close", "final"],
}


def per_call_wall(host: str, module: str, pin: str, env: dict, runs: int) -> dict:
    """Wall time of each PKCS#11 call of pkcs11-tool's two flows (tests/module/oneshot_host.c
    --time), median over `runs` processes in the flow's steady state (its own cache directory,
    warmed by the same flow); "outside the calls" is the process's wall time minus them."""
    result = {}
    for flow, steps in HOST_FLOWS.items():
        cmd = [host, module, "--time", *(s.format(pin=pin) for s in steps)]
        fenv = {**env, "XDG_CACHE_HOME": env["XDG_CACHE_HOME"] + "-host-" + flow.strip("-")[:1]}
        calls: dict[str, list[float]] = {}
        walls = []
        for i in range(runs + 2):
            start = time.perf_counter_ns()
            done = subprocess.run(cmd, env=fenv, capture_output=True, text=True, timeout=60)
            wall = (time.perf_counter_ns() - start) / 1e3
            if i < 2:
                continue
            walls.append(wall)
            for line in done.stdout.splitlines():
                m = re.match(r"(\S+) rv=(\S+).* us=(\d+)", line)
                if m:
                    calls.setdefault(m.group(1), []).append(float(m.group(3)))
        med = {k: statistics.median(v) for k, v in calls.items()}
        whole = statistics.median(walls)
        result[flow] = {"calls": med, "process_us": whole,
                        "outside_us": whole - sum(med.values()),
                        "command": shlex.join(cmd).replace(pin, "PIN")}
    return result


def write_raw(out: str, name: str, command: list[str], text: str) -> None:
    with open(os.path.join(out, name), "w") as f:
        f.write("$ " + shlex.join(command) + "\n" + text)


# -- the part ----------------------------------------------------------------------------------


def run(out: str, module: str, release: str | None, nginx_env: dict, softhsm_env: dict,
        softhsm: str, softhsm_pin: str, runs: int, say) -> dict:
    digest = os.path.join(out, "digest.bin")
    with open(digest, "wb") as f:
        f.write(nginx_backend.DIGEST)
    pin = nginx_backend.OPERATOR_PASSWORD
    targets = [Target("p11fast", module, pin, nginx_env)]
    if release:
        targets.append(Target("release wheel", release, pin, nginx_env))
    targets += [Target("p11fast snapshot off", module, pin,
                       {**nginx_env, "P11FAST_SNAPSHOT": "off"}),
                Target("softhsm2", softhsm, softhsm_pin, softhsm_env)]
    cache_root = os.path.join(out, "oneshot-cache")
    series = build_series(targets, digest, cache_root)
    for s in series:
        for _op, cmd in s.ops:
            say("$ " + shlex.join(cmd))
    failed = check_commands(series)
    for name, text in failed.items():
        say(f"  {name}: fails: {text}")
    series = [s for s in series if s.name not in failed]
    say(f"  {len(series)} series, {runs} rounds (+3 warm-up), shuffled order per round")
    samples = interleaved(series, runs, 3)
    summary = summarise(samples)
    write_raw(out, "oneshot-samples.json", ["oneshot"], json.dumps(
        {k: {"wall_ms": v["wall"], "cpu_ms": v["cpu"]} for k, v in summary.items()}, indent=1))
    for key, r in summary.items():
        say(f"  {key:34} median {r['median']:6.2f} ms  min {r['min']:6.2f}  "
            f"cpu {r['cpu_median']:6.2f} ms  raw: " + " ".join(f"{w:.1f}" for w in r["wall"]))
    result = {"summary": summary, "ratios": ratios(summary), "failed": failed,
              "commands": {s.name: [shlex.join(c) for _op, c in s.ops] for s in series}}
    result["profile"] = profile(out, targets, series, say)
    return result


def profile(out: str, targets: list[Target], series: list[Series], say) -> dict:
    """The per-phase profile of the source build's (and SoftHSM2's) `-L` and `--sign ECDSA`,
    each in its series' steady state (the cache directories the timing left)."""
    prof: dict = {"callgrind": {}, "objects": {}}
    for s in series:
        if s.target.name not in ("p11fast", "release wheel", "softhsm2") or len(s.ops) != 1:
            continue
        op, cmd = s.ops[0]
        if op == "--sign RSA":
            continue
        tag = re.sub(r"[^\w]+", "-", s.name).strip("-")
        prof["callgrind"][s.name] = callgrind_phases(out, tag, cmd, s.env)
        say(f"  callgrind {s.name}: {prof['callgrind'][s.name]['ir_total']:,} instructions")
        if s.target.name != "softhsm2":
            prof["objects"][s.name] = loaded_objects(out, tag, cmd, s.env)
    source = targets[0]
    host = build_host(out)
    prof["calls"] = per_call_wall(host, source.module, source.pin,
                                  {**source.env, "XDG_CACHE_HOME": os.path.join(out, "hostc")},
                                  15)  # fmt: skip
    prof["imports"] = import_profile(out, source.module, source.pin, source.env)
    # The floor a process that starts any interpreter cannot go below.
    bare = [spawn_timed([sys.executable, "-I", "-S", "-c", "pass"], {})[0] for _ in range(20)]
    prof["python_pass_ms"] = statistics.median(bare)
    return prof


# -- the report --------------------------------------------------------------------------------


def report(r: dict) -> list[str]:
    s = r["summary"]
    lines = ["", "## One-shot `pkcs11-tool` (interleaved rounds; wall ms, CPU = user + sys)", "",
             "| target | command | median | min | p90 | CPU median | runs |",
             "|---|---|---|---|---|---|---|"]
    for key, v in s.items():
        name, op = split_key(key)
        lines.append(f"| {name} | `{op}` | {v['median']:.2f} | {v['min']:.2f} | {v['p90']:.2f} | "
                     f"{v['cpu_median']:.2f} | {v['runs']} |")
    lines += ["", "### Against SoftHSM2 in the same rounds (goal: `-L` ≤ 0.8×, `--sign` ≤ 0.7×, "
              "release wheel)", "",
              "| target | command | ratio of medians | median paired ratio | CPU ratio | goal | "
              "met |", "|---|---|---|---|---|---|---|"]
    for x in r["ratios"]:
        met = "yes" if x["ratio"] <= x["goal"] else "**no**"
        lines.append(f"| {x['target']} | `{x['op']}` | {x['ratio']:.2f} | {x['paired']:.2f} | "
                     f"{x['cpu_ratio']:.2f} | ≤ {x['goal']} | {met} |")
    lines += ["", "Commands (each series in its own XDG_CACHE_HOME):", ""]
    lines += [f"- {name}: " + "; ".join(f"`{c}`" for c in cmds)
              for name, cmds in r["commands"].items()]
    lines += profile_report(r["profile"])
    return lines


def profile_report(p: dict) -> list[str]:
    cg = p["callgrind"]
    builds = list(cg)
    lines = ["", "### Where the instructions go (callgrind, one process, inclusive)", "",
             "| phase (function) | " + " | ".join(builds) + " |", "|---|" + "---|" * len(builds),
             "| the whole process | " + " | ".join(f"{cg[b]['ir_total']:,}" for b in builds)
             + " |"]
    for name, what, depth in PHASES:
        cells = [cg[b]["phases"][name] for b in builds]
        if not any(cells):
            continue
        indent = "&nbsp;&nbsp;" * depth
        lines.append(f"| {indent}{what} (`{name}`) | " + " | ".join(
            f"{ir:,} ({100 * ir / cg[b]['ir_total']:.0f} %)" if ir else "—"
            for ir, b in zip(cells, builds, strict=True)) + " |")
    for name, o in p["objects"].items():
        objs = o["objects"]
        after = [x for x in objs if x["after_module"]]
        lines += ["", f"### Shared objects, {name} (LD_DEBUG=files; relocation entries from "
                  "readelf)", "",
                  f"At start-up: {len(objs) - len(after)} objects "
                  f"({sum(x['size'] for x in objs if not x['after_module']) / 1e6:.1f} MB; "
                  f"ld.so's start-up statistics: {o['ld_statistics']}). From the module's dlopen "
                  f"on: {len(after)} objects, {sum(x['size'] for x in after) / 1e6:.1f} MB, "
                  f"{sum(x['symbolic'] for x in after):,} symbolic and "
                  f"{sum(x['relative'] for x in after):,} relative relocations:", "",
                  "| object | size KB | symbolic relocs | relative relocs |", "|---|---|---|---|"]
        lines += [f"| {os.path.basename(x['path'])} | {x['size'] / 1e3:,.0f} | "
                  f"{x['symbolic']:,} | {x['relative']:,} |" for x in after]
    calls = p["calls"]
    lines += ["", "### Wall time per PKCS#11 call (tests/module/oneshot_host.c --time, median of "
              "15 processes, steady state), µs", ""]
    for flow, c in calls.items():
        lines += [f"`{flow}`-like flow, `{c['command']}`: process {c['process_us']:,.0f} µs, of "
                  f"which outside the calls (exec, ld.so, exit) {c['outside_us']:,.0f}", "",
                  "| call | µs |", "|---|---|"]
        lines += [f"| {k} | {v:,.0f} |" for k, v in c["calls"].items()]
        lines.append("")
    imp = p["imports"]
    lines += [f"### Python imports per call (`-X importtime`, ctypes host, snapshot off; "
              f"`python -I -S -c pass` takes {p['python_pass_ms']:.1f} ms here)", "",
              "| during | modules | top-level import µs | largest |", "|---|---|---|---|"]
    for call, c in imp["calls"].items():
        top = ", ".join(f"{n} {us / 1e3:.1f} ms" for us, n in c["top"])
        lines.append(f"| {call} | {c['modules']} | {c['us']:,} | {top} |")
    return lines
