"""The hot path of two or more p11fast builds, compared fairly on a noisy machine.

    benchmarks/out/venv/bin/python benchmarks/hot_ab.py [--rounds 5] [--threads 1,8] MODULE ...

Each round runs `p11load` once per module and thread count, in turn, against the canned nginx
backend, so drift in the machine's load reaches every build alike. Then callgrind counts the
instructions of one thread's signatures for each build (independent of the machine's noise).
Prints the machine, every command line, each round's raw numbers, the median ops/s and client
CPU per signature of each build, and each build's ratio to the first.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile

import nginx_backend
from run_all import (
    KEY,
    Runner,
    build_p11load,
    callgrind_summary,
    load_average,
    machine,
    p11fast_env,
    say,
)


def callgrind_per_signature(runner: Runner, module: str, port: int, env: dict,
                            tag: str) -> float:
    out = os.path.join(runner.out, f"callgrind-{tag}.out")
    cmd = ["valgrind", "--tool=callgrind", "--toggle-collect=measured_op",
           f"--callgrind-out-file={out}", runner.p11load, "--module", module, "--label", KEY,
           "--threads", "1", "--port", str(port), "--json", "--duration", "3", "--warmup", "1"]
    say("$ " + " ".join(cmd))
    done = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=600, check=True)
    run = json.loads(done.stdout.splitlines()[-1])
    return callgrind_summary(runner, out, run["ops"] + run["errors"])["ir_per_op"]


def main(argv: list[str]) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    p.add_argument("modules", nargs="+", help="libp11fast.so of each build; the first is the base")
    p.add_argument("--rounds", type=int, default=5, help="rounds (each runs every build once)")
    p.add_argument("--threads", default="1,8", help="thread counts, comma-separated")
    p.add_argument("--duration", type=float, default=5, help="measured seconds per run")
    p.add_argument("--warmup", type=float, default=1.5, help="warm-up seconds per run")
    p.add_argument("--no-callgrind", action="store_true", help="skip the instruction counts")
    args = p.parse_args(argv)
    threads = [int(t) for t in args.threads.split(",")]
    m = machine()
    say(f"# {m['date']}, commit {m['commit']}", f"# {m['cpu']}, {m['cores']} cores; {m['uname']}",
        f"# $ {' '.join([sys.executable, *sys.argv])}", f"# load average {load_average()}")
    samples: dict[tuple[int, int], list[dict]] = {}
    ir: dict[int, float] = {}
    with tempfile.TemporaryDirectory() as out, nginx_backend.nginx_backend() as backend:
        runner = Runner(args, out, build_p11load(out))
        env = p11fast_env(backend.config_path)
        for round_ in range(args.rounds):
            for t in threads:
                for i, module in enumerate(args.modules):
                    r = runner.p11load_run(f"build{i} r{round_}", module, env, t, "--label", KEY,
                                           port=backend.port)
                    if "failed" in r:
                        sys.exit(f"{module}: p11load failed")
                    samples.setdefault((i, t), []).append(r)
        if not args.no_callgrind:
            for i, module in enumerate(args.modules):
                ir[i] = callgrind_per_signature(runner, module, backend.port, env, f"build{i}")
    say(f"# load average {load_average()} at the end", "")
    print("| build | threads | median ops/s | median CPU µs/op | ops/s ÷ base | CPU/op ÷ base |")
    print("|---|---|---|---|---|---|")
    for t in threads:
        base_ops = statistics.median(r["ops_per_s"] for r in samples[(0, t)])
        base_cpu = statistics.median(r["cpu_us_per_op"] for r in samples[(0, t)])
        for i, module in enumerate(args.modules):
            ops = statistics.median(r["ops_per_s"] for r in samples[(i, t)])
            cpu = statistics.median(r["cpu_us_per_op"] for r in samples[(i, t)])
            print(f"| {module} | {t} | {ops:,.0f} | {cpu:.1f} | {ops / base_ops:.3f} | "
                  f"{cpu / base_cpu:.3f} |")
    if ir:
        print("\n| build | callgrind instructions per signature | ÷ base |\n|---|---|---|")
        for i, module in enumerate(args.modules):
            print(f"| {module} | {ir[i]:,.0f} | {ir[i] / ir[0]:.3f} |")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
