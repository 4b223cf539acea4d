"""Run a script of this folder with the project's Python (``scripts/venv-python``), whichever ``python3`` started it."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

HERE = Path(__file__).resolve().parent


def reexec_in_venv() -> None:
    """Replace this process with the same script under the project's Python, unless it is that Python already."""
    python = subprocess.run([HERE / "venv-python"], capture_output=True, text=True, check=True).stdout.strip()
    if Path(sys.prefix).resolve() == Path(python).parent.parent.resolve():  # the venv's folder
        return
    if not Path(python).exists():
        sys.exit(f"{python} is missing: run scripts/setup-dev first")
    os.execv(python, [python, sys.argv[0], *sys.argv[1:]])
