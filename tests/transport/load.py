"""Transport load benchmark (prints numbers, asserts nothing).

    python3 tests/transport/load.py URL [--threads 1,2,8,32] [--seconds 5] [--count N]
                                        [--max-idle N|threads|default] [--key ID]

URL is a NetHSM-like backend answering POST /keys/<ID>/sign (ID: --key, default k1; "bench" for
benchmarks/nginx_backend.py) with keep-alive (e.g. nginx with a
canned {"signature": ...}). --count N sends exactly N requests per thread (for callgrind).
--max-idle sets the instance's max_idle_connections: a number, "threads" (one per thread, the
old behaviour of this script) or "default" (unset: the transport's default cap)."""

import argparse
import os
import resource
import subprocess
import sys

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(os.path.dirname(HERE))
sys.path[:0] = [HERE, ROOT]


def build():
    from Cython.Build import cythonize
    from setuptools import Extension, setup

    ext = Extension(
        "tp_load",
        [os.path.join(HERE, "tp_load.pyx")],
        # the headers the ABI's declarations name: ours by their path in the tree, PKCS#11's
        include_dirs=[ROOT, os.path.join(ROOT, "include")],
        extra_compile_args=["-O2"],
    )
    setup(
        name="tp-load",
        ext_modules=cythonize(
            [ext], include_path=[ROOT], build_dir="/tmp/tp_load_build", quiet=True
        ),
        script_args=["-q", "build_ext", "--build-lib", HERE, "--build-temp", "/tmp/tp_load_build"],
    )


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("url")
    ap.add_argument("--threads", default="1,2,8,32")
    ap.add_argument("--seconds", type=float, default=5.0)
    ap.add_argument("--count", type=int, default=0)
    ap.add_argument("--max-idle", default="threads")
    ap.add_argument("--key", default="k1")
    args = ap.parse_args()
    import tp_helpers

    from tests import builds

    builds.ensure_inplace()
    build()
    import tp_load
    from p11fast._abi import Pool

    print(
        "machine:",
        os.uname().nodename,
        os.cpu_count(),
        "CPUs;",
        subprocess.check_output(
            ["git", "-C", ROOT, "log", "-1", "--format=%h %s"], text=True
        ).strip(),
    )
    print("command:", " ".join(sys.argv))
    for n in [int(x) for x in args.threads.split(",")]:
        cap = {"threads": max(n, 1), "default": None}.get(args.max_idle)
        if cap is None and args.max_idle != "default":
            cap = int(args.max_idle)
        pool = Pool(
            tp_helpers.slot(
                tp_helpers.instance(args.url, danger_insecure_cert=True, max_idle_connections=cap)
            )
        )
        path = f"/keys/{args.key}/sign".encode()
        tp_load.run(pool, n, count=20, path=path)  # connect every thread's connection first
        opened0 = pool.stats()["connections_opened"]
        r0 = resource.getrusage(resource.RUSAGE_SELF)
        ok, errors, secs = tp_load.run(pool, n, seconds=args.seconds, count=args.count, path=path)
        r1 = resource.getrusage(resource.RUSAGE_SELF)
        cpu = (r1.ru_utime - r0.ru_utime) + (r1.ru_stime - r0.ru_stime)
        opened = pool.stats()["connections_opened"]
        print(
            f"threads {n:3d} cap {args.max_idle}: {ok / secs:9.0f} ops/s  ok {ok} errors {errors} "
            f"in {secs:.2f} s  client CPU/op {1e6 * cpu / max(ok, 1):.1f} us  "
            f"connections opened {opened0} in warm-up + {opened - opened0} measured"
        )
        pool.close()


if __name__ == "__main__":
    main()
