"""The sections that run Reactr in this process: inprocess, scheduler, fresh, startup, cpu, languages."""

from __future__ import annotations

import os
import statistics
import tempfile
import time
from pathlib import Path

from benchmarks.floors import fresh_floor, straightforward_host, tuned_floor
from benchmarks.measure import interleaved, interleaved_samples, per_job
from benchmarks.paths import ECHO, HASH, ROOT
from reactr_wasm import Limits, Reactr

# --- in-process -------------------------------------------------------------------

SMALL = b"world 123"  # the 9 B echo of the design notes' in-process comparison
BIG = (bytes(range(32, 127)) * 700)[:65536]  # 64 KiB of ASCII (the Rust SDK wants UTF-8)


def bench_inprocess(results: dict[str, float]) -> None:
    """Reactr.do(...).then() vs the tuned floor (and the public-API host), interleaved in rounds."""
    wasm = ECHO.read_bytes()
    straightforward, floor = straightforward_host(wasm), tuned_floor(wasm)
    with Reactr() as reactr:
        echo = reactr.register("echo", str(ECHO))
        for label, data in (("9B", SMALL), ("64KiB", BIG)):
            expected = b"hello " + data
            assert straightforward(data) == floor(data) == echo(data).then() == expected
            for _ in range(100):  # earn the caller's-thread fast path, as any warm runnable has
                echo(data).then()
            samples = interleaved_samples(
                {
                    "reactr": lambda d=data: echo(d).then(),
                    "floor": lambda d=data: floor(d),
                    "straightforward": lambda d=data: straightforward(d),
                },
                seconds=6.0,
                rounds=15,
            )
            timings = {variant: statistics.median(values) for variant, values in samples.items()}
            # Each round's own ratio: the two took turns there, so drift of the machine cancels out.
            ratios = [ours / base for ours, base in zip(samples["reactr"], samples["floor"], strict=True)]
            key = f"inprocess.{label}"
            for variant, us in timings.items():
                results[f"{key}.{variant}_us"] = us
            ratio = results[f"{key}.reactr_vs_floor"] = statistics.median(ratios)
            speedup = results[f"{key}.speedup_vs_straightforward"] = timings["straightforward"] / timings["reactr"]
            target = "1.5" if label == "9B" else "1.2"
            print(
                f"in-process echo job, {label}: reactr {timings['reactr']:.2f} µs, tuned floor "
                f"{timings['floor']:.2f} µs ({ratio:.2f}x the floor, median of {len(ratios)} rounds' ratios; "
                f"target <= {target}x), public-API host "
                f"{timings['straightforward']:.1f} µs ({speedup:.1f}x slower than reactr)"
            )


# --- scheduler overhead -------------------------------------------------------------------


def bench_scheduler(results: dict[str, float]) -> None:
    from reactr_wasm import Job

    def noop(job: Job, ctx: object) -> bytes:
        return b""

    data = b"my name is joe"
    with Reactr() as reactr:
        reactr.register("noop", noop)
        reactr.register("echo", str(ECHO))
        runnable = reactr.worker("echo").target.runnable  # type: ignore[attr-defined]
        direct_noop = per_job(lambda: noop(Job("noop", data), None))
        via_noop = per_job(lambda: reactr.do("noop", data).then())
        direct_echo = per_job(lambda: runnable.run(data))
        via_echo = per_job(lambda: reactr.do("echo", data).then())
    results["scheduler.python_direct_us"], results["scheduler.python_do_us"] = direct_noop, via_noop
    results["scheduler.python_overhead_us"] = via_noop - direct_noop
    results["scheduler.wasm_direct_us"], results["scheduler.wasm_do_us"] = direct_echo, via_echo
    results["scheduler.wasm_overhead_us"] = via_echo - direct_echo
    print(
        f"scheduler overhead (Reactr.do(...).then() minus the direct call): no-op Python runnable "
        f"{via_noop:.2f} vs {direct_noop:.2f} µs = {via_noop - direct_noop:.2f} µs/job "
        f"({1e6 / via_noop:.0f} jobs/s); echo Wasm runnable {via_echo:.2f} vs {direct_echo:.2f} µs = "
        f"{via_echo - direct_echo:.2f} µs/job ({1e6 / via_echo:.0f} jobs/s) (target <= 5 µs)"
    )


# --- fresh isolation ------------------------------------------------------------------

FRESH_EXAMPLES = {"rust": "hello-echo", "as": "hello-echo-as"}


def bench_fresh(results: dict[str, float]) -> None:
    """isolation="fresh" through the public API vs "reuse" and vs the low-level fresh-instance floor."""
    data = b"my name is joe"
    with Reactr() as reactr:
        for language, example in FRESH_EXAMPLES.items():
            path = ROOT / "runnables" / f"{example}.wasm"
            floor = fresh_floor(path.read_bytes())
            reactr.register(f"{example}-reuse", str(path))
            reactr.register(f"{example}-fresh", str(path), isolation="fresh")
            expected = floor(data)
            for isolation in ("reuse", "fresh"):
                assert reactr.do(f"{example}-{isolation}", data).then() == expected
            timings = interleaved(
                {
                    "fresh": lambda n=f"{example}-fresh": reactr.do(n, data).then(),
                    "reuse": lambda n=f"{example}-reuse": reactr.do(n, data).then(),
                    "floor": lambda f=floor: f(data),
                }
            )
            key = f"fresh.{language}"
            for variant, us in timings.items():
                results[f"{key}.{variant}_us"] = us
            results[f"{key}.fresh_vs_floor"] = timings["fresh"] / timings["floor"]
            results[f"{key}.fresh_vs_reuse"] = timings["fresh"] / timings["reuse"]
            print(
                f"isolation {example}: fresh {timings['fresh']:.1f} µs/job = "
                f"{results[f'{key}.fresh_vs_floor']:.2f}x the low-level fresh floor {timings['floor']:.1f} µs "
                f"(target <= 0.75x); reuse {timings['reuse']:.2f} µs/job "
                f"(fresh = {results[f'{key}.fresh_vs_reuse']:.1f}x reuse)"
            )


# --- startup with many modules ---------------------------------------------------------------


def custom_section(index: int) -> bytes:
    """A wasm custom section: makes each copy a distinct module (own hash, own compile)."""
    name = b"bench-copy"
    body = bytes([len(name)]) + name + index.to_bytes(4, "little")
    return b"\x00" + bytes([len(body)]) + body


def bench_startup(results: dict[str, float]) -> None:
    from reactr_wasm import WasmEngine

    wasm = ECHO.read_bytes()
    copies = [wasm + custom_section(i) for i in range(50)]
    with tempfile.TemporaryDirectory() as tmp:
        timings = {}
        for label in ("cold", "cached"):
            start = time.perf_counter()
            with WasmEngine(cache_dir=Path(tmp)) as engine:
                for index, module in enumerate(copies):
                    engine.load(f"echo{index}", module)
            timings[label] = time.perf_counter() - start
    results["startup.cold_s"], results["startup.cached_s"] = timings["cold"], timings["cached"]
    results["startup.speedup"] = timings["cold"] / timings["cached"]
    print(
        f"start-up with 50 modules: {timings['cold']:.2f} s compiling, {timings['cached']:.2f} s from the disk "
        f"cache ({results['startup.speedup']:.1f}x faster)"
    )


# --- CPU-heavy scaling ---------------------------------------------------------------------


def bench_cpu(results: dict[str, float]) -> None:
    rounds = os.environ.get("BENCH_HASH_ROUNDS", "330000")  # ~5 ms per job here
    with Reactr() as reactr:
        reactr.register("one", str(HASH), pool_size=1, limits=Limits(timeout=60))
        reactr.register("two", str(HASH), pool_size=2, limits=Limits(timeout=60))
        start = time.perf_counter()
        reactr.do("one", rounds).then()
        results["cpu.job_ms"] = (time.perf_counter() - start) * 1e3
        jobs = max(20, int(3000 / results["cpu.job_ms"]))  # ~3 s with one thread
        for name in ("one", "two"):
            reactr.do(name, rounds).then()  # warm the instances
            start = time.perf_counter()
            for result in [reactr.do(name, rounds) for _ in range(jobs)]:
                result.then()
            results[f"cpu.{name}_jobs_per_s"] = jobs / (time.perf_counter() - start)
    results["cpu.scaling"] = results["cpu.two_jobs_per_s"] / results["cpu.one_jobs_per_s"]
    print(
        f"CPU-heavy ({results['cpu.job_ms']:.1f} ms/job): pool 2 {results['cpu.two_jobs_per_s']:.0f} jobs/s "
        f"vs pool 1 {results['cpu.one_jobs_per_s']:.0f} jobs/s = {results['cpu.scaling']:.2f}x (target >= 1.8x)"
    )


# --- guest languages -------------------------------------------------------------------------


def bench_languages(results: dict[str, float]) -> None:
    """The same examples built from Rust and from AssemblyScript (our SDKs), side by side."""
    with Reactr() as reactr:
        for example, data in (("hello-echo", b"joe"), ("hash", b"200000")):
            for language, suffix in (("rust", ""), ("as", "-as")):
                name = f"{example}{suffix}"
                reactr.register(name, str(ROOT / "runnables" / f"{name}.wasm"), limits=Limits(timeout=60))
                results[f"languages.{example}.{language}_us"] = per_job(lambda n=name, d=data: reactr.do(n, d).then())
            ratio = results[f"languages.{example}.as_us"] / results[f"languages.{example}.rust_us"]
            results[f"languages.{example}.as_over_rust"] = ratio
            print(
                f"{example}: AssemblyScript {results[f'languages.{example}.as_us']:.1f} µs/job vs Rust "
                f"{results[f'languages.{example}.rust_us']:.1f} µs/job = {ratio:.2f}x"
            )
