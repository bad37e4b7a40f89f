"""mechanisms_build.py: the ABI's mechanism tables, written from p11fast/mechanisms.py."""

import os
from pathlib import Path

import mechanisms_build

REPO = Path(__file__).resolve().parents[2]


def test_the_pxi_is_written_only_when_its_text_changes(tmp_path):
    target = tmp_path / "_mechanisms.pxi"
    assert mechanisms_build.write(str(target))
    os.utime(target, (1, 1))
    assert not mechanisms_build.write(str(target))
    assert target.stat().st_mtime == 1  # untouched: cythonize sees nothing new to compile
    target.write_text(target.read_text() + "# edited\n")
    assert mechanisms_build.write(str(target))
    assert target.read_text() == mechanisms_build.render()


def test_the_built_pxi_is_the_current_table():
    assert (REPO / "p11fast" / "_mechanisms.pxi").read_text() == mechanisms_build.render()

