"""The ``reactr-wasm`` command: ``serve``, ``run`` and ``inspect`` (``new`` and ``build``: ``cli_tools.py``).

Exit codes: 0 success; 1 the runnable failed (``run``) or the module is not a
usable runnable (``inspect``); 2 a usage, config or module error.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import logging
import sys
from dataclasses import replace
from pathlib import Path
from typing import Any

from reactr_wasm import __version__
from reactr_wasm.cli_client import add_commands as add_client_commands
from reactr_wasm.cli_tools import add_commands as add_tool_commands
from reactr_wasm.compose import build_backends, build_reactr, build_service, register_wasm
from reactr_wasm.config import Config, dump_toml, load_config, parse_size
from reactr_wasm.errors import ConfigError, ModuleError, ReactrError
from reactr_wasm.scheduler.values import value_bytes
from reactr_wasm.server.logformat import LOG_FORMATS, set_log_format, setup_logging
from reactr_wasm.server.supervisor import MAX_WORKERS, WORKER_FD_FLAG, check_workers, serve_worker, supervise

EXIT_FAILED, EXIT_USAGE = 1, 2

log = logging.getLogger("reactr_wasm.cli")

DESCRIPTION = """\
Run Suborbital Reactr WebAssembly runnables: serve a folder of .wasm files over
HTTP, run one job from the shell, or check whether a module is a usable runnable."""

EPILOG = """\
examples:
  reactr-wasm new hello --lang rust                 write a starter into runnables/src/hello/
  reactr-wasm build hello                           compile it into runnables/hello.wasm
  reactr-wasm serve --dir runnables                 serve every runnables/NAME.wasm as job NAME
  curl -X POST 'localhost:8080/do/hello-echo?then=true' -d 'joe'
  reactr-wasm run runnables/hello-echo.wasm --data joe
  reactr-wasm inspect runnables/hello-echo.wasm

Run 'reactr-wasm COMMAND --help' for the options of one command."""

SERVE_EPILOG = """\
Every NAME.wasm in the folder is served as job NAME (POST /do/NAME). Files added,
replaced or removed while the server runs are picked up within a second or two;
a module that does not load is logged and skipped (a previous version keeps serving).
Flags override the config file. Stop with Ctrl-C or SIGTERM: jobs in flight finish.

examples:
  reactr-wasm serve --dir runnables --port 9000
  reactr-wasm serve --config reactr.toml --print-config    show the effective config, secrets masked
  reactr-wasm serve --log-format json | jq .              one JSON object per log line
  curl -X POST 'localhost:9000/do/hello-echo?then=true' -d 'my name is joe'

config file (TOML; every key optional; relative paths are relative to the file): --config FILE,
else DIR/reactr.toml when the served folder has one (the examples' grants their capabilities):
  runnables_dir = "runnables"
  [server]            host, port, body_limit = "10MiB", result_ttl, auth_tokens = ["env(TOKEN)"], loop, workers
  [log]               access = false, format = "text"|"json"
  [limits]            timeout = 10, memory = "256MiB", result_size = "16MiB", queue_size
  [capabilities]      grant = ["cache"]: what every runnable may use (http, graphql, cache, static, db)
  [capabilities.http] allowed_domains, blocked_domains, allow_private, proxy, ca_file, resolve, ...
  [callbacks]         secret = "env(CALLBACK_SECRET)", attempts, timeout, allow_private
  [runnables.NAME]    capabilities = ["http"], pool_size, isolation = "reuse"|"fresh", timeout, memory"""

RUN_EPILOG = """\
The result bytes go to stdout; an error goes to stderr with exit code 1 (the
runnable failed, timed out or trapped) or 2 (bad usage, unreadable or unusable module).
A JSON CoordinatedRequest as data runs the job in request mode.

examples:
  reactr-wasm run hello-echo.wasm --data 'my name is joe'
  reactr-wasm run resize.wasm --data @photo.png > small.png
  echo -n joe | reactr-wasm run hello-echo.wasm --data @-
  reactr-wasm run api.wasm --data '{"method":"GET","url":"/x","request_id":"1","body":""}'"""

INSPECT_EPILOG = """\
Shows the module's exports and imports, the capabilities its imports need
(http, cache, db, ...) and whether it is a usable Reactr runnable: the ABI exports
are there and an instance starts. Exit code 0: usable; 1: not usable; 2: unreadable.

examples:
  reactr-wasm inspect runnables/hello-echo.wasm
  reactr-wasm inspect --json module.wasm | jq .capabilities"""


class UsageError(Exception):
    """Bad arguments or an unreadable input file: exit code 2."""


def _port(text: str) -> int:
    if not text.isdigit() or not 1 <= int(text) <= 65535:
        raise argparse.ArgumentTypeError(f"must be an integer between 1 and 65535, got {text!r}")
    return int(text)


def _workers(text: str) -> int:
    if not text.isdigit() or not 1 <= int(text) <= MAX_WORKERS:
        raise argparse.ArgumentTypeError(f"must be an integer between 1 and {MAX_WORKERS}, got {text!r}")
    return int(text)


def _seconds(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        value = -1.0
    if not 0 < value < float("inf"):
        raise argparse.ArgumentTypeError(f"must be a number of seconds above 0, got {text!r}")
    return value


def _size(text: str) -> int:
    try:
        return parse_size(int(text) if text.isdigit() else text)
    except ValueError as error:
        raise argparse.ArgumentTypeError(str(error)) from None


def build_parser() -> argparse.ArgumentParser:
    formatter = argparse.RawDescriptionHelpFormatter
    parser = argparse.ArgumentParser(
        prog="reactr-wasm", description=DESCRIPTION, epilog=EPILOG, formatter_class=formatter
    )
    parser.add_argument("--version", action="version", version=f"%(prog)s {__version__}")
    common = argparse.ArgumentParser(add_help=False)
    common.add_argument("--log-level", choices=["debug", "info", "warning", "error"], help="what to log to stderr")
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    serve = commands.add_parser(
        "serve",
        parents=[common],
        help="serve a folder of .wasm runnables over HTTP (with hot reload)",
        description="Serve a folder of .wasm runnables over HTTP, reloading files as they change.",
        epilog=SERVE_EPILOG,
        formatter_class=formatter,
    )
    serve.add_argument(
        "--dir", type=Path, help="runnables folder (default: runnables_dir of the config, else ./runnables)"
    )
    serve.add_argument("--config", type=Path, metavar="FILE", help="TOML config file (see below)")
    serve.add_argument("--host", help="address to listen on (default 127.0.0.1; 0.0.0.0 for all)")
    serve.add_argument("--port", type=_port, help="port to listen on (default 8080)")
    serve.add_argument("--no-watch", action="store_true", help="do not reload runnables when files change")
    serve.add_argument(
        "--access-log", action=argparse.BooleanOptionalAction, help="a log line per request (default: off; log.access)"
    )
    serve.add_argument(
        "--log-format", choices=LOG_FORMATS, help="text lines, or one JSON object per line (default text; log.format)"
    )
    serve.add_argument(
        "--loop", choices=["auto", "asyncio", "uvloop"],
        help="event loop; auto: uvloop when installed, from reactr-wasm[fast] (default auto; server.loop)",
    )  # fmt: skip
    serve.add_argument(
        "--workers", type=_workers, metavar="N",
        help="N server processes sharing the port, kept running by a supervisor; N > 1 needs --redis "
        "(default 1; server.workers)",
    )  # fmt: skip
    serve.add_argument(WORKER_FD_FLAG, type=int, help=argparse.SUPPRESS)  # a child of --workers: its supervisor link
    serve.add_argument(
        "--print-config", action="store_true", help="print the effective config (secrets masked) and exit"
    )
    serve.add_argument(
        "--redis", metavar="URL",
        help="Redis mode: queue jobs and keep results in this Redis, shared with other nodes "
        "(redis://HOST:PORT/DB; default: none, all in this process; cluster.redis)",
    )  # fmt: skip
    serve.set_defaults(handler=cmd_serve, default_log_level="info")

    run = commands.add_parser(
        "run",
        parents=[common],
        help="run one job on a .wasm runnable and print its result",
        description="Run one job on a .wasm runnable; the result bytes go to stdout.",
        epilog=RUN_EPILOG,
        formatter_class=formatter,
    )
    run.add_argument("file", type=Path, metavar="FILE.wasm", help="the runnable")
    run.add_argument(
        "--data", default="", metavar="STR|@FILE", help="job input: text, @FILE for a file's bytes, @- for stdin"
    )
    run.add_argument("--timeout", type=_seconds, metavar="S", help="stop the job after S seconds (default 10)")
    run.add_argument("--memory", type=_size, metavar="SIZE", help='memory cap, e.g. "64MiB" (default 256MiB)')
    run.add_argument("--config", type=Path, metavar="FILE", help="take limits from this config file")
    run.set_defaults(handler=cmd_run, default_log_level="warning")

    inspect = commands.add_parser(
        "inspect",
        parents=[common],
        help="show a module's exports, imports, capabilities and ABI verdict",
        description="Check whether a .wasm file is a usable Reactr runnable and what it needs.",
        epilog=INSPECT_EPILOG,
        formatter_class=formatter,
    )
    inspect.add_argument("file", type=Path, metavar="FILE.wasm", help="the module to inspect")
    inspect.add_argument("--json", action="store_true", help="print the report as JSON")
    inspect.set_defaults(handler=cmd_inspect, default_log_level="warning")
    add_tool_commands(commands, common)
    add_client_commands(commands, common)
    return parser


# ---------------------------------------------------------------------------
# serve


FOLDER_CONFIG = "reactr.toml"  # read from the served folder when no --config is given


def serve_config(args: argparse.Namespace) -> Config:
    """The config file (``--config``, else the served folder's reactr.toml, else defaults) with the flags applied."""
    config_file = args.config
    if config_file is None and args.dir is not None and (args.dir / FOLDER_CONFIG).is_file():
        config_file = args.dir / FOLDER_CONFIG
    config = load_config(config_file) if config_file else Config()
    server = replace(
        config.server,
        host=args.host if args.host is not None else config.server.host,
        port=args.port if args.port is not None else config.server.port,
        loop=args.loop or config.server.loop,
        workers=args.workers or config.server.workers,
    )
    logs = replace(
        config.log,
        access=args.access_log if args.access_log is not None else config.log.access,
        format=args.log_format or config.log.format,
    )
    directory = args.dir or config.runnables_dir or Path("runnables")
    cluster = replace(config.cluster, redis=args.redis) if args.redis is not None else config.cluster
    return replace(config, server=server, log=logs, runnables_dir=directory.absolute(), cluster=cluster)


def cmd_serve(args: argparse.Namespace) -> int:
    from reactr_wasm.server.run import ListenError, loop_factory, serve  # the HTTP server loads only for serve

    config = serve_config(args)
    if args.print_config:
        sys.stdout.write(dump_toml(config.redacted()))
        return 0
    set_log_format(config.log.format)
    new_loop = loop_factory(config.server.loop)
    if config.runnables_dir is None or not config.runnables_dir.is_dir():
        raise UsageError(
            f"runnables folder {config.runnables_dir} does not exist: pass --dir DIR or set runnables_dir in --config"
        )
    workers = config.server.workers
    check_workers(config, f"--workers {workers}" if args.workers else f"{config.source}: server.workers = {workers}")
    log.info("config: %s", config.source)
    if workers > 1:
        return supervise(config, args.argv)
    service = build_service(config, watch=not args.no_watch)
    try:
        with asyncio.Runner(loop_factory=new_loop) as runner:
            if args.worker_fd is not None:
                runner.run(serve_worker(args.worker_fd, serve, service.reactr, config, app=service.app))
            else:
                runner.run(serve(service.reactr, config, app=service.app))
    except ListenError as error:
        raise UsageError(str(error)) from None
    finally:
        service.close()
    return 0


# ---------------------------------------------------------------------------
# run


def _read_input(spec: str) -> bytes:
    if spec == "@-":
        return sys.stdin.buffer.read()
    if spec.startswith("@"):
        try:
            return Path(spec[1:]).read_bytes()
        except OSError as error:
            raise UsageError(f"--data {spec}: cannot read: {error.strerror or error}") from None
    return spec.encode()


def _read_module(path: Path) -> bytes:
    try:
        return path.read_bytes()
    except OSError as error:
        raise UsageError(f"{path}: cannot read: {error.strerror or error}") from None


def cmd_run(args: argparse.Namespace) -> int:
    data = _read_input(args.data)
    wasm = _read_module(args.file)
    config = load_config(args.config) if args.config else Config()
    limits = replace(
        config.limits,
        timeout=args.timeout if args.timeout is not None else config.limits.timeout,
        memory=args.memory if args.memory is not None else config.limits.memory,
    )
    config = replace(config, limits=limits)
    name = args.file.stem
    with build_backends(config) as backends, build_reactr(config, backends) as reactr:
        try:
            register_wasm(reactr, config, name, wasm, args.file, backends)
        except ModuleError as error:
            _error(str(error))
            return EXIT_USAGE
        try:
            value = reactr.do(name, data).then()
        except ReactrError as error:
            _error(f"runnable '{name}' failed: {error}")
            return EXIT_FAILED
    sys.stdout.buffer.write(value_bytes(value))  # a request job's output without its headers
    sys.stdout.flush()
    return 0


# ---------------------------------------------------------------------------
# inspect


def inspect_module(path: Path, wasm: bytes) -> dict[str, Any]:
    """The ``inspect`` report: exports, imports, capabilities, problems and ``ok``."""
    import wasmtime

    from reactr_wasm.wasm.engine import WasmEngine
    from reactr_wasm.wasm.module import check_abi

    report: dict[str, Any] = {"file": str(path), "size": len(wasm)}
    report |= {"ok": False, "exports": [], "imports": [], "capabilities": [], "grants": {}, "grant_line": None}
    report["problems"] = []
    if wasm[:4] != b"\0asm":
        report["problems"] = ["not a WebAssembly module (bad magic bytes)"]
        return report
    try:
        module = wasmtime.Module(wasmtime.Engine(), wasm)
    except wasmtime.WasmtimeError as error:
        lines = str(error).strip().splitlines()
        report["problems"] = [f"cannot compile: {lines[0] if lines else 'invalid module'}"]
        return report
    info = check_abi(module)
    report |= {"exports": info.exports, "imports": info.imports, "capabilities": info.capabilities}
    report |= _grants(path.stem, info.imports)
    problems = list(info.problems)
    if not problems:  # the exports are right: does an instance start (_start/init)?
        with WasmEngine() as engine:
            try:
                engine.load(path.stem, wasm, source=str(path)).close()
            except ModuleError as error:
                problems.append(str(error).removeprefix(f"runnable '{path.stem}' ({path}): "))
    report |= {"ok": not problems, "problems": problems}
    return report


def _grants(name: str, imports: list[str]) -> dict[str, Any]:
    """Which imports need which grant (``{"http": ["env.fetch_url"]}``) and the config line that grants them."""
    from reactr_wasm.capabilities.hints import grant_line
    from reactr_wasm.capabilities.registry import GUARDS

    grants: dict[str, list[str]] = {}
    for label in imports:
        module, _, function = label.partition(".")
        capability = GUARDS.get(function.removesuffix("_swift")) if module == "env" else None
        if capability is not None:
            grants.setdefault(capability, []).append(label)
    return {"grants": grants, "grant_line": grant_line(name, list(grants)) if grants else None}


def _print_report(report: dict[str, Any]) -> None:
    verdict = "usable Reactr runnable" if report["ok"] else "NOT a usable Reactr runnable"
    grants = report["grants"]
    needs = "; ".join(f"{name} ({', '.join(labels)})" for name, labels in grants.items())
    rows = [
        ("file", f"{report['file']} ({report['size']} bytes)"),
        ("verdict", verdict),
        ("exports", ", ".join(report["exports"]) or "none"),
        ("imports", ", ".join(report["imports"]) or "none"),
        ("capabilities", ", ".join(report["capabilities"]) or "none"),
        ("needs grants", needs or "none (logging, request fields, response headers and run_job need none)"),
    ]
    if report["grant_line"] is not None:
        rows.append(("grant with", f"{report['grant_line']}   (in reactr.toml)"))
    for label, value in rows:
        print(f"{label + ':':14}{value}")
    for problem in report["problems"]:
        print(f"{'problem:':14}{problem}")


def cmd_inspect(args: argparse.Namespace) -> int:
    report = inspect_module(args.file, _read_module(args.file))
    if args.json:
        print(json.dumps(report, indent=2))
    else:
        _print_report(report)
    return 0 if report["ok"] else EXIT_FAILED


# ---------------------------------------------------------------------------


def _error(message: str) -> None:
    print(f"reactr-wasm: {message}", file=sys.stderr)


def main(argv: list[str] | None = None) -> int:
    """Entry point of the ``reactr-wasm`` console script; returns the exit code."""
    args = build_parser().parse_args(argv)
    args.argv = list(sys.argv[1:] if argv is None else argv)  # as given: serve --workers repeats it per process
    setup_logging(args.log_level or args.default_log_level)
    try:
        code: int = args.handler(args)
    except (UsageError, ConfigError) as error:
        _error(str(error))
        return EXIT_USAGE
    except KeyboardInterrupt:
        return 130
    return code
