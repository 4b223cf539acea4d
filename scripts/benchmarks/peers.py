"""The queue peers (``../shared/bench/queue_peers.py``) run right after the redis section, and Redis mode's ratios."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

from benchmarks.paths import ROOT
from benchmarks.redis_async import MODES, size_label


def queue_peers_script() -> Path | None:
    """``$BENCH_QUEUE_PEERS``, else the first ``shared/bench/queue_peers.py`` above the checkout."""
    if path := os.environ.get("BENCH_QUEUE_PEERS"):
        return Path(path)
    found = (parent / "shared/bench/queue_peers.py" for parent in ROOT.parents)
    return next((path for path in found if path.exists()), None)


def compare_peers(
    table: dict[str, dict[str, dict[str, tuple[float, float, float]]]],
    variants: list[str],
    peers: str,
    results: dict[str, float],
) -> None:
    """Run the queue peers right after, with the same N, sizes, variants and rounds; print Redis mode's ratios."""
    script = queue_peers_script()
    if script is None or not variants:
        print("redis --peers: " + ("no queue_peers.py found (set BENCH_QUEUE_PEERS)" if script is None
                                   else "no Redis mode rows to compare"))  # fmt: skip
        return
    with tempfile.TemporaryDirectory() as tmp:
        out = Path(tmp) / "peers.json"
        command = [shutil.which("python3") or sys.executable, str(script), "--json", str(out),
                   "--variants", ",".join(variants), "--sizes", ",".join(table[variants[0]]),
                   "--n", os.environ.get("BENCH_REDIS_N", "10000"),
                   "--n-large", os.environ.get("BENCH_REDIS_N_LARGE", "1000"),
                   "--rounds", os.environ.get("BENCH_REDIS_ROUNDS", "3"),
                   "--latency-n", os.environ.get("BENCH_REDIS_LATENCY_N", "500")]  # fmt: skip
        if peers:
            command += ["--peers", peers]
        print(f"queue peers: {' '.join(command[1:])}", flush=True)
        subprocess.run(command, check=False)
        if not out.exists():
            print("queue peers: no results")
            return
        summary = json.loads(out.read_text())["summary"]
    print("Redis mode vs the fastest queue peer (floors excluded), same N, medians; embedded mode (not durable, "
          "no Redis) vs the peers without persistence, for scale:")  # fmt: skip
    pairs = [(variant, variant) for variant in variants] + ([("embedded", "none")] if "embedded" in table else [])
    for mode, variant in pairs:
        for size, ours in table[mode].items():
            measured = summary.get(variant, {}).get(size, {})
            rows = {peer: m for peer, m in measured.items() if not peer.startswith("floor")}
            if not rows:
                continue
            fast = max(rows, key=lambda p: rows[p]["e2e_per_s"]["median"])
            quick = min(rows, key=lambda p: rows[p]["p50_ms"]["median"])
            e2e = ours["e2e_per_s"][0] / rows[fast]["e2e_per_s"]["median"]
            p50 = ours["p50_ms"][0] / rows[quick]["p50_ms"]["median"]
            key = f"redis.{mode}.{size}"
            results[f"{key}.peer_e2e_per_s"] = rows[fast]["e2e_per_s"]["median"]
            results[f"{key}.peer_p50_ms"] = rows[quick]["p50_ms"]["median"]
            results[f"{key}.e2e_vs_peer"], results[f"{key}.p50_vs_peer"] = e2e, p50
            targets = ("", "") if mode == "embedded" else (" (target >= 2x)", " (target <= 1x)")
            print(
                f"  {MODES[mode][0]:28} {size_label(int(size)):>6}  e2e {ours['e2e_per_s'][0]:.0f}/s vs {fast} "
                f"{rows[fast]['e2e_per_s']['median']:.0f}/s = {e2e:.2f}x{targets[0]}; "
                f"p50 {ours['p50_ms'][0]:.2f} ms vs {quick} {rows[quick]['p50_ms']['median']:.2f} ms = {p50:.2f}x"
                f"{targets[1]}"
            )
