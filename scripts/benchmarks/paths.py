"""Where things are in the checkout: its root, the entry script, the runnables the sections use."""

from __future__ import annotations

from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent.parent  # scripts/benchmarks/ -> the checkout
BENCH = ROOT / "scripts" / "bench"  # the entry script: the producer process runs it again
ECHO = ROOT / "runnables" / "hello-echo.wasm"
HASH = ROOT / "runnables" / "hash.wasm"
