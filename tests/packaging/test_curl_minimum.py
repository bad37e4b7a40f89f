"""setup.py's libcurl minimum is the newest libcurl symbol the transport uses."""

from __future__ import annotations

import glob
import os
import re

from tests.packaging.conftest import ROOT


def version(text: str) -> tuple[int, ...]:
    return tuple(int(part) for part in text.split("."))


def test_curl_min_is_the_newest_libcurl_symbol_used(static_deps):
    # symbols-in-versions (from the curl source the static build used): NAME INTRODUCED [...]
    with open(os.path.join(static_deps, "share", "curl", "symbols-in-versions")) as f:
        introduced = {
            fields[0]: version(fields[1])
            for fields in (line.split() for line in f)
            if len(fields) >= 2 and re.fullmatch(r"[\d.]+", fields[1])
        }
    used = set()
    for path in glob.glob(os.path.join(ROOT, "p11fast", "**", "*.py[xi]"), recursive=True):
        with open(path) as f:
            used |= set(re.findall(r"\bCURL\w+", f.read()))
    newest = max((introduced[name], name) for name in used if name in introduced)
    with open(os.path.join(ROOT, "setup.py")) as f:
        declared = tuple(
            map(int, re.search(r"CURL_MIN = \((\d+), (\d+), (\d+)\)", f.read()).groups())
        )
    assert declared == newest[0], f"setup.py says {declared}, {newest[1]} needs {newest[0]}"
