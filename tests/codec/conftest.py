"""Builds the compiled core and the codec's test harness before the tests import them (see
build_codec.py)."""

import os
import subprocess
import sys

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)

from build_codec import HARNESS_DIR, ROOT  # noqa: E402

# A subprocess keeps setuptools' global state and compiler output out of the test run;
# a failed build shows its output and stops the session.
subprocess.run([sys.executable, os.path.join(HERE, "build_codec.py")], check=True, cwd=ROOT)
sys.path.insert(0, HARNESS_DIR)
if ROOT not in sys.path:
    sys.path.insert(0, ROOT)
