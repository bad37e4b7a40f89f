"""Cold start of two or more p11fast builds, compared fairly on a noisy machine.

    benchmarks/out/venv/bin/python benchmarks/cold_ab.py [--runs 50] MODULE [MODULE ...]

Each round runs `pkcs11-tool -L` and a one-shot `--sign` once per module, in turn, against the
canned nginx backend, so drift in the machine's load reaches every module alike (hyperfine
times one command after the other). Prints the machine, every command line, and the median
and minimum wall time of each, in ms; `--raw FILE` keeps every sample.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time

import nginx_backend
from run_all import load_average, machine, p11fast_env, tool_commands


def timed(cmd: list[str], env: dict) -> float:
    start = time.perf_counter()
    done = subprocess.run(cmd, env=env, capture_output=True, text=True)
    elapsed = (time.perf_counter() - start) * 1e3
    if done.returncode != 0:
        sys.exit(f"{' '.join(cmd)} failed: {done.stdout}{done.stderr}")
    return elapsed


def main(argv: list[str]) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    p.add_argument("modules", nargs="+", help="libp11fast.so of each build")
    p.add_argument("--runs", type=int, default=50, help="rounds (each runs every command once)")
    p.add_argument("--warmup", type=int, default=3, help="untimed rounds first")
    p.add_argument("--raw", help="write every sample to this JSON file")
    args = p.parse_args(argv)
    m = machine()
    print(f"# {m['date']}, commit {m['commit']}\n# {m['cpu']}, {m['cores']} cores; {m['uname']}\n"
          f"# $ {' '.join([sys.executable, *sys.argv])}\n# load average {load_average()}")
    with tempfile.TemporaryDirectory() as tmp, nginx_backend.nginx_backend() as backend:
        digest = os.path.join(tmp, "digest.bin")
        with open(digest, "wb") as f:
            f.write(nginx_backend.DIGEST)
        env = p11fast_env(backend.config_path)
        pin = nginx_backend.OPERATOR_PASSWORD
        cmds = [cmd for module in args.modules
                for cmd in tool_commands(module, pin, digest).values()]
        for cmd in cmds:
            print("# " + " ".join(cmd))
        samples: list[list[float]] = [[] for _ in cmds]
        for round_ in range(args.warmup + args.runs):
            for i, cmd in enumerate(cmds):
                ms = timed(cmd, env)
                if round_ >= args.warmup:
                    samples[i].append(ms)
    print(f"# load average {load_average()} at the end\n")
    print("| module | command | median ms | min ms | runs |\n|---|---|---|---|---|")
    for cmd, times in zip(cmds, samples, strict=True):
        op = "-L" if cmd[-1] == "-L" else "--sign"
        print(f"| {cmd[2]} | {op} | {statistics.median(times):.2f} | {min(times):.2f} | "
              f"{len(times)} |")
    if args.raw:
        with open(args.raw, "w") as f:
            rows = [{"command": c, "ms": t} for c, t in zip(cmds, samples, strict=True)]
            json.dump(rows, f, indent=1)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
