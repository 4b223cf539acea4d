"""The ``reactr-wasm invoke``, ``then``, ``jobs`` and ``cancel`` commands: talk to a running server.

They use ``reactr_wasm.client`` (imported when a command runs, so ``serve`` and
``run`` never load httpx). Exit codes: 0 success; 1 the job failed, could not
run (a full queue) or is still running (``then --wait``); 2 a usage error, an
unreachable server, a refused token, an unknown runnable or result id, or a
request the server refused.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from pathlib import Path
from typing import TYPE_CHECKING

from reactr_wasm.errors import (
    ExecutionError,
    JobCancelled,
    JobPending,
    JobTimeout,
    QueueFull,
    ReactrError,
    RunErr,
    RunnableNotFound,
    Unauthorized,
)

if TYPE_CHECKING:
    from reactr_wasm.client import Client

EXIT_FAILED, EXIT_USAGE = 1, 2
DEFAULT_SERVER = "http://127.0.0.1:8080"  # client.DEFAULT_URL, without importing httpx here

INVOKE_EPILOG = """\
Runs job NAME on a running server (POST /do/NAME) and writes the result bytes to
stdout; with --async or --callback, prints the result id instead. The job's error
goes to stderr with exit code 1; a usage error, an unreachable server, a refused
token or an unknown runnable exit 2.

examples:
  reactr-wasm invoke hello-echo --data 'my name is joe'
  reactr-wasm invoke resize --data @photo.png > small.png
  echo -n joe | reactr-wasm invoke hello-echo --data @-
  reactr-wasm invoke hello-echo --data joe --async             prints the result id
  reactr-wasm then RESULT_ID                                   ... then its result
  reactr-wasm invoke hello-echo --data joe --callback https://example.com/hook
  REACTR_SERVER=http://10.0.0.5:8080 REACTR_TOKEN=... reactr-wasm invoke hello-echo"""

JOBS_EPILOG = """\
Prints the job's status as JSON (GET /jobs/ID): status (queued, running, succeeded,
failed, timed_out, cancelled), timestamps and error. Never waits.

example:
  reactr-wasm jobs $(reactr-wasm invoke hello-echo --data joe --async)"""


def add_commands(
    commands: argparse._SubParsersAction[argparse.ArgumentParser], common: argparse.ArgumentParser
) -> None:
    """Add ``invoke``, ``then``, ``jobs`` and ``cancel`` to the subcommands of ``reactr-wasm``."""
    formatter = argparse.RawDescriptionHelpFormatter
    remote = argparse.ArgumentParser(add_help=False)
    remote.add_argument(
        "--server", default=os.environ.get("REACTR_SERVER") or DEFAULT_SERVER, metavar="URL",
        help=f"the server (default: $REACTR_SERVER, else {DEFAULT_SERVER})",
    )  # fmt: skip
    remote.add_argument("--token", default=os.environ.get("REACTR_TOKEN"), help="bearer token (default: $REACTR_TOKEN)")
    remote.add_argument(
        "--header", action="append", type=_header, default=[], metavar="K:V", help="an extra request header (repeat)"
    )
    parents = [common, remote]

    invoke = commands.add_parser(
        "invoke", parents=parents, help="run a job on a running server and print its result",
        description="Run a job on a running reactr-wasm server.", epilog=INVOKE_EPILOG, formatter_class=formatter,
    )  # fmt: skip
    invoke.add_argument("name", metavar="NAME", help="the runnable (job name)")
    invoke.add_argument(
        "--data", default="", metavar="STR|@FILE", help="job input: text, @FILE for a file's bytes, @- for stdin"
    )
    invoke.add_argument("--async", dest="is_async", action="store_true", help="do not wait: print the result id")
    invoke.add_argument("--callback", metavar="URL", help="the server POSTs the outcome to URL; print the result id")
    invoke.set_defaults(handler=cmd_invoke, default_log_level="warning")

    then = commands.add_parser(
        "then", parents=parents, help="print the result of a job started with --async",
        description="Wait for a job started before and print its result (GET /then/ID).", formatter_class=formatter,
    )  # fmt: skip
    then.add_argument("result_id", metavar="ID", help="the result id")
    then.add_argument("--wait", type=_seconds, metavar="S", help="wait at most S seconds (default: until it ends)")
    then.set_defaults(handler=cmd_then, default_log_level="warning")

    jobs = commands.add_parser(
        "jobs", parents=parents, help="show a job's status as JSON",
        description="Show a job's status (GET /jobs/ID).", epilog=JOBS_EPILOG, formatter_class=formatter,
    )  # fmt: skip
    jobs.add_argument("result_id", metavar="ID", help="the result id")
    jobs.set_defaults(handler=cmd_jobs, default_log_level="warning")

    cancel = commands.add_parser(
        "cancel", parents=parents, help="cancel a job (a finished one's result is forgotten)",
        description=(
            "Cancel an unfinished job; its result is kept as cancelled. A finished job's result is "
            "forgotten (DELETE /then/ID)."
        ),
        formatter_class=formatter,
    )  # fmt: skip
    cancel.add_argument("result_id", metavar="ID", help="the result id")
    cancel.set_defaults(handler=cmd_cancel, default_log_level="warning")


def _header(text: str) -> tuple[str, str]:
    name, colon, value = text.partition(":")
    if not colon or not name.strip() or name != name.strip():
        raise argparse.ArgumentTypeError(f"must be NAME:VALUE, got {text!r}")
    return name, value.strip()


def _seconds(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        value = -1.0
    if not 0 <= value < float("inf"):
        raise argparse.ArgumentTypeError(f"must be a number of seconds, 0 or more, got {text!r}")
    return value


def _error(message: str) -> None:
    print(f"reactr-wasm: {' '.join(message.split())}", file=sys.stderr)  # one line


def read_data(spec: str) -> bytes:
    """The bytes ``--data SPEC`` names: ``@FILE``, ``@-`` (stdin), else the text; ValueError for an unreadable file."""
    if spec == "@-":
        return sys.stdin.buffer.read()
    if spec.startswith("@"):
        try:
            return Path(spec[1:]).read_bytes()
        except OSError as error:
            raise ValueError(f"--data {spec}: cannot read: {error.strerror or error}") from None
    return spec.encode()


def _connect(args: argparse.Namespace) -> Client | None:
    """A client for ``--server``, or None after reporting a bad URL."""
    from reactr_wasm.client import Client  # httpx loads only for these commands

    try:
        return Client(args.server, token=args.token, headers=dict(args.header))
    except ValueError as error:
        _error(f"--server: {error}")
        return None


def _failed(error: ReactrError, what: str, server: str) -> int:
    """Report ``error`` on one line of stderr; its exit code."""
    if isinstance(error, (RunErr, JobTimeout, JobCancelled, ExecutionError)):
        _error(f"{what} failed: {error}")
        return EXIT_FAILED
    if isinstance(error, (JobPending, QueueFull)):  # the job may yet run or end: not a usage error
        _error(str(error))
        return EXIT_FAILED
    if isinstance(error, RunnableNotFound):
        _error(f"runnable '{error.name}' not found at {server}")
    elif isinstance(error, Unauthorized):
        _error(f"{server}: HTTP 401: {error} (pass --token or set REACTR_TOKEN)")
    else:
        _error(str(error))
    return EXIT_USAGE


def _write(data: bytes) -> int:
    sys.stdout.buffer.write(data)
    sys.stdout.flush()
    return 0


def cmd_invoke(args: argparse.Namespace) -> int:
    try:
        data = read_data(args.data)
    except ValueError as error:
        _error(str(error))
        return EXIT_USAGE
    client = _connect(args)
    if client is None:
        return EXIT_USAGE
    with client:
        try:
            if args.callback is not None:
                print(client.invoke_with_callback(args.name, data, args.callback))
                return 0
            if args.is_async:
                print(client.do_async(args.name, data))
                return 0
            return _write(client.do(args.name, data))
        except ReactrError as error:
            return _failed(error, f"runnable '{args.name}'", client.base_url)


def cmd_then(args: argparse.Namespace) -> int:
    client = _connect(args)
    if client is None:
        return EXIT_USAGE
    with client:
        try:
            return _write(client.then(args.result_id, wait=args.wait))
        except ReactrError as error:
            return _failed(error, f"job {args.result_id}", client.base_url)


def cmd_jobs(args: argparse.Namespace) -> int:
    client = _connect(args)
    if client is None:
        return EXIT_USAGE
    with client:
        try:
            print(json.dumps(client.status(args.result_id), indent=2))
            return 0
        except ReactrError as error:
            return _failed(error, f"job {args.result_id}", client.base_url)


def cmd_cancel(args: argparse.Namespace) -> int:
    client = _connect(args)
    if client is None:
        return EXIT_USAGE
    with client:
        try:
            client.cancel(args.result_id)
        except ReactrError as error:
            return _failed(error, f"job {args.result_id}", client.base_url)
    print(f"cancelled {args.result_id}")
    return 0
