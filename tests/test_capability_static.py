"""The static-file capability on a real directory tree, including hostile names."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from reactr_wasm.capabilities.errors import CapabilityError
from reactr_wasm.capabilities.static import StaticFiles, normalise_name
from reactr_wasm.errors import ConfigError

IMPORTANT = b"# Hello, World\n\nContents are very important"


@pytest.fixture
def tree(tmp_path: Path) -> Path:
    """``tmp/static`` (the root) beside ``tmp/secret.txt``, with nested files and symlinks."""
    root = tmp_path / "static"
    (root / "docs" / "deep").mkdir(parents=True)
    (root / "important.md").write_bytes(IMPORTANT)
    (root / "docs" / "deep" / "note.txt").write_bytes(b"deep note")
    (root / "etc").mkdir()
    (root / "etc" / "passwd").write_bytes(b"not the host's")
    (tmp_path / "secret.txt").write_bytes(b"secret")
    (root / "inside-link").symlink_to(root / "important.md")
    (root / "relative-inside").symlink_to("docs/deep/note.txt")
    (root / "outside-link").symlink_to(tmp_path / "secret.txt")
    (root / "outside-dir").symlink_to(tmp_path)
    (root / "etc-link").symlink_to("/etc/passwd")
    (root / "loop").symlink_to("loop")
    return root


@pytest.fixture
def files(tree: Path) -> StaticFiles:
    return StaticFiles(tree, max_bytes=1024)


def refused(files: StaticFiles, name: str) -> str:
    with pytest.raises(CapabilityError) as caught:
        files.read(name)
    return str(caught.value)


@pytest.mark.parametrize(
    "name", ["important.md", "/important.md", "./important.md", "static/important.md", "static//important.md"]
)
def test_names_are_normalised_like_reactr_bundles(files: StaticFiles, name: str) -> None:
    assert files.read(name) == IMPORTANT


def test_normalise_name_strips_once_in_reactrs_order() -> None:
    assert normalise_name("static/./a") == "a"
    assert normalise_name("./static/a") == "static/a"
    assert normalise_name("//a") == "/a"


def test_nested_files_and_symlinks_inside_the_root(files: StaticFiles) -> None:
    assert files.read("docs/deep/note.txt") == b"deep note"
    assert files.read("docs//deep/./note.txt") == b"deep note"
    assert files.read("inside-link") == IMPORTANT
    assert files.read("relative-inside") == b"deep note"


def test_a_leading_slash_names_the_static_root_not_the_host(files: StaticFiles) -> None:
    assert files.read("/etc/passwd") == b"not the host's"


@pytest.mark.parametrize("name", ["missing.md", "docs/missing", "/nothing", "static/none"])
def test_missing_file_is_reactrs_error(files: StaticFiles, name: str) -> None:
    assert refused(files, name) == "file does not exist"


@pytest.mark.parametrize(
    ("name", "reason"),
    [
        ("../secret.txt", "path traversal"),
        ("static/../../secret.txt", "path traversal"),
        ("docs/../../secret.txt", "path traversal"),
        ("docs/..", "path traversal"),
        ("..", "path traversal"),
        ("//etc/passwd", "absolute paths are not allowed"),
        ("static///etc/passwd", "absolute paths are not allowed"),
        ("important.md\x00.png", "NUL byte"),
        ("..\\secret.txt", "backslash"),
        ("", "empty file name"),
        ("static/", "empty file name"),
        ("./", "empty file name"),
    ],
)
def test_names_that_could_escape_are_refused_before_lookup(files: StaticFiles, name: str, reason: str) -> None:
    text = refused(files, name)
    assert text.startswith(f"static file {name!r} refused: ")
    assert reason in text


@pytest.mark.parametrize("name", ["outside-link", "outside-dir/secret.txt", "etc-link"])
def test_symlinks_out_of_the_root_are_refused(files: StaticFiles, name: str) -> None:
    assert refused(files, name) == f"static file {name!r} refused: it resolves outside the static root"


def test_directories_fifos_and_loops_are_refused(files: StaticFiles, tree: Path) -> None:
    assert refused(files, "docs") == "static file 'docs' refused: it is a directory"
    assert refused(files, ".") == "static file '.' refused: it is a directory"
    os.mkfifo(tree / "pipe")
    assert refused(files, "pipe") == "static file 'pipe' refused: not a regular file"  # and did not block
    assert refused(files, "loop").startswith("static file 'loop' refused: ")


def test_size_cap(files: StaticFiles, tree: Path) -> None:
    (tree / "big.bin").write_bytes(b"x" * 1025)
    (tree / "fits.bin").write_bytes(b"x" * 1024)
    assert refused(files, "big.bin") == "static file 'big.bin' refused: larger than 1024 bytes"
    assert files.read("fits.bin") == b"x" * 1024


def test_root_must_be_a_directory(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match=r"static files root .*: no such file or directory"):
        StaticFiles(tmp_path / "absent")
    (tmp_path / "file").write_bytes(b"")
    with pytest.raises(ConfigError, match="not a directory"):
        StaticFiles(tmp_path / "file")


def test_root_given_through_a_symlink(tree: Path, tmp_path: Path) -> None:
    alias = tmp_path / "alias"
    alias.symlink_to(tree)
    files = StaticFiles(alias)
    assert files.read("important.md") == IMPORTANT
    assert refused(files, "outside-link").endswith("it resolves outside the static root")
