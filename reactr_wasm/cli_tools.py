"""The ``reactr-wasm new`` and ``reactr-wasm build`` commands: write, then compile, a runnable.

Exit codes: 0 success; 1 a compiler refused a source, or ``--check`` found a
module that differs from its source; 2 a usage error, an unknown or
unrecognised source folder, or a missing toolchain (the message names the
command that installs it). ``build --watch`` runs until Ctrl-C (or SIGTERM), then exits 0.
"""

from __future__ import annotations

import argparse
import signal
import sys
from pathlib import Path

from reactr_wasm.errors import ReactrError
from reactr_wasm.tooling import LANGUAGES, RUST_CARGO, STARTERS, BuildFailed, ToolchainMissing
from reactr_wasm.tooling.build import Source, SourceError, build, check, check_toolchains, find_source, source_names
from reactr_wasm.tooling.scaffold import new_runnable
from reactr_wasm.tooling.watch import changed_runnables

EXIT_FAILED, EXIT_USAGE = 1, 2

NEW_EPILOG = """\
Writes a starter runnable into DIR/src/NAME/ and prints the commands that build
and serve it. NAME becomes the job name (POST /do/NAME) and the module DIR/NAME.wasm.

examples:
  reactr-wasm new hello --lang rust
  reactr-wasm new hello --lang rust --cargo     a Cargo project: Cargo.toml, src/lib.rs
  reactr-wasm new greet --lang assemblyscript --dir runnables
  reactr-wasm new echo --lang wat               one .wat file: nothing to install"""

BUILD_EPILOG = """\
Compiles DIR/src/NAME/ into DIR/NAME.wasm; the language is recognised from the
folder's files (lib.rs or Cargo.toml: rust; index.ts: assemblyscript; one .wat
file). A module is replaced only when its build succeeds, so a server watching DIR
reloads it and a compile error leaves the previous one serving. Exit code 1: a
compile error (the compiler's message is shown) or a --check mismatch; 2: unknown
source or missing toolchain. --watch runs until Ctrl-C (exit 0).

Rust uses the first rustc with the wasm32 std: $REACTR_RUSTC, $RUSTC, rustc on
PATH, ~/.cargo/bin/rustc, /usr/bin/rustc (Cargo projects: the cargo beside it).

examples:
  reactr-wasm build hello                       runnables/src/hello/ -> runnables/hello.wasm
  reactr-wasm build --all --dir runnables
  reactr-wasm build --watch --all               rebuild each runnable when its sources change
  reactr-wasm build --all --check               do the committed modules match their sources?"""


def add_commands(
    commands: argparse._SubParsersAction[argparse.ArgumentParser], common: argparse.ArgumentParser
) -> None:
    """Add ``new`` and ``build`` to the subcommands of ``reactr-wasm``."""
    formatter = argparse.RawDescriptionHelpFormatter
    new = commands.add_parser(
        "new",
        parents=[common],
        help="start a new runnable from a starter (Rust, AssemblyScript or WAT)",
        description="Start a new runnable: write a starter into DIR/src/NAME/.",
        epilog=NEW_EPILOG,
        formatter_class=formatter,
    )
    new.add_argument("name", metavar="NAME", help="the runnable's (job's) name: lower case, digits, '-', '_'")
    new.add_argument("--lang", required=True, choices=STARTERS, help="the language of the starter")
    new.add_argument("--cargo", action="store_true", help="with --lang rust: a Cargo project (Cargo.toml, src/lib.rs)")
    new.add_argument("--dir", type=Path, default=Path("runnables"), help="runnables folder (default ./runnables)")
    new.set_defaults(handler=cmd_new, default_log_level="warning")

    build_cmd = commands.add_parser(
        "build",
        parents=[common],
        help="compile runnables from DIR/src/NAME/ into DIR/NAME.wasm",
        description="Compile runnable sources into .wasm modules, with progress output.",
        epilog=BUILD_EPILOG,
        formatter_class=formatter,
    )
    build_cmd.add_argument("names", nargs="*", metavar="NAME", help="runnables to build (folders of DIR/src)")
    build_cmd.add_argument("--all", action="store_true", help="build every folder of DIR/src")
    build_cmd.add_argument("--dir", type=Path, default=Path("runnables"), help="runnables folder (default ./runnables)")
    build_cmd.add_argument(
        "--check",
        action="store_true",
        help="build into a scratch folder and compare with DIR/NAME.wasm byte for byte; change nothing",
    )
    build_cmd.add_argument(
        "--watch", action="store_true", help="build, then rebuild a runnable whenever a file of its source changes"
    )
    build_cmd.set_defaults(handler=cmd_build, default_log_level="warning")


def _error(message: str) -> None:
    print(f"reactr-wasm: {message}", file=sys.stderr)


# ---------------------------------------------------------------------------
# new


def cmd_new(args: argparse.Namespace) -> int:
    language = LANGUAGES[args.lang]
    if args.cargo and language.name != "rust":
        _error(f"--cargo makes a Rust Cargo project; it does not go with --lang {args.lang}")
        return EXIT_USAGE
    if args.cargo:
        language = RUST_CARGO
    try:
        folder = new_runnable(args.name, language, args.dir)
    except ReactrError as error:
        _error(str(error))
        return EXIT_USAGE
    files = sorted(str(path.relative_to(folder)) for path in folder.rglob("*") if path.is_file())
    name, directory = args.name, args.dir
    print(f"created {folder}/ ({language.name}): {', '.join(files)}")
    try:
        language.check_toolchain()
    except ToolchainMissing as error:
        print(f"before building it: {error}")
    steps = [
        (f"reactr-wasm build {name} --dir {directory}", f"compile it into {directory / (name + '.wasm')}"),
        (f"reactr-wasm serve --dir {directory}", "serve it on localhost:8080; each build reloads it"),
        (f"curl -X POST 'localhost:8080/do/{name}?then=true' -d 'joe'", ""),
    ]
    width = max(len(command) for command, _ in steps[:2]) + 4
    print("next steps:")
    for command, what in steps:
        print(f"  {command.ljust(width)}{what}".rstrip())
    return 0


# ---------------------------------------------------------------------------
# build


class _Line:
    """One progress line per runnable: 'NAME (lang): compiling… built ...'; other notes on lines of their own."""

    def __init__(self, source: Source) -> None:
        self.name, self.prefix = source.name, f"{source.name} ({source.language.name}):"
        self.open = True
        sys.stdout.write(f"{self.prefix} compiling…")
        sys.stdout.flush()

    def note(self, text: str) -> None:
        if self.open and text.startswith(f"compiling {self.name} "):
            return  # the language's own "compiling NAME (...)": what the open line already says
        if self.open:
            sys.stdout.write("\n")
            self.open = False
        print(f"  {text}", flush=True)

    def end(self, text: str) -> None:
        print(f" {text}" if self.open else f"{self.prefix} {text}", flush=True)
        self.open = False


def _resolve(args: argparse.Namespace) -> list[Source]:
    """The sources named on the command line (or all); raises SourceError listing every problem."""
    if args.all and args.names:
        raise SourceError("name runnables or pass --all, not both")
    names = source_names(args.dir) if args.all else args.names
    if not names:
        known = ", ".join(source_names(args.dir))
        raise SourceError(
            f"nothing to build in {args.dir / 'src'}"
            if args.all or not known
            else f"name the runnables to build ({known}) or pass --all"
        )
    sources, problems = [], []
    for name in dict.fromkeys(names):
        try:
            sources.append(find_source(args.dir, name))
        except SourceError as error:
            problems.append(str(error))
    if problems:
        raise SourceError("\n".join(problems))
    return sources


def _size(size: int) -> str:
    return f"{size} B" if size < 1024 else f"{size / 1024:.1f} KB"


def _build_one(source: Source, args: argparse.Namespace) -> int:
    """Build (or ``--check``) one runnable, reporting on its progress line; returns its exit code."""
    line = _Line(source)
    try:
        if not args.check:
            built = build(source, args.dir, line.note)
            line.end(f"built {args.dir / built.path.name} ({_size(built.size)}, {built.seconds:.1f} s)")
            return 0
        mismatch = check(source, args.dir, line.note)
    except BuildFailed as error:
        line.end("failed")
        print(str(error).rstrip(), file=sys.stderr)
        return EXIT_FAILED
    except (ToolchainMissing, OSError) as error:  # OSError: the folder is not writable, a tool vanished
        line.end("failed")
        _error(str(error) if isinstance(error, ToolchainMissing) else f"{source.name}: {error}")
        return EXIT_USAGE
    line.end(f"same as {args.dir / source.name}.wasm" if mismatch is None else "DIFFERS")
    if mismatch is None:
        return 0
    _error(mismatch)
    return EXIT_FAILED


def cmd_build(args: argparse.Namespace) -> int:
    if args.watch:
        return _watch(args)
    try:
        sources = _resolve(args)
        check_toolchains(sources)
    except ReactrError as error:
        for line in str(error).splitlines():
            _error(line)
        return EXIT_USAGE
    codes = {source.name: _build_one(source, args) for source in sources}
    failed = [name for name, code in codes.items() if code]
    if failed:
        what = "differ from their sources or did not build" if args.check else "did not build"
        _error(f"{len(failed)} of {len(sources)} runnables {what}: {', '.join(failed)}")
    return max(codes.values())


# ---------------------------------------------------------------------------
# build --watch


def _watch(args: argparse.Namespace) -> int:
    """Build the runnables named (or all), then rebuild each one whose sources change, until Ctrl-C."""
    src = args.dir / "src"
    try:
        if args.check:
            raise SourceError("--watch rebuilds and --check only compares: pass one of them")
        if not src.is_dir():
            raise SourceError(f"no folder {src} to watch; start a runnable with: reactr-wasm new NAME --lang rust")
        selected = None if args.all and not args.names else {source.name for source in _resolve(args)}
    except ReactrError as error:
        for line in str(error).splitlines():
            _error(line)
        return EXIT_USAGE
    # Stop on SIGTERM as on Ctrl-C (a build in progress removes its scratch file), and on
    # SIGINT even when started from a script, which leaves background jobs ignoring it.
    signal.signal(signal.SIGTERM, _interrupt)
    signal.signal(signal.SIGINT, signal.default_int_handler)
    try:
        _rebuild(sorted(selected) if selected is not None else source_names(args.dir), args)
        print(f"watching {src}/ for changes (Ctrl-C to stop)", flush=True)
        for changed in changed_runnables(src):
            _rebuild(sorted(changed if selected is None else changed & selected), args)
    except KeyboardInterrupt:
        print("\nstopped watching", flush=True)
    return 0


def _interrupt(signum: int, frame: object) -> None:
    raise KeyboardInterrupt


def _rebuild(names: list[str], args: argparse.Namespace) -> None:
    """Build each of ``names`` that still has a source folder; report problems and go on."""
    for name in names:
        if not (args.dir / "src" / name).is_dir():
            continue  # removed (or renamed): nothing to build until it comes back
        try:
            source = find_source(args.dir, name)
            source.language.check_toolchain()
        except ReactrError as error:
            _error(str(error))
            continue
        _build_one(source, args)
