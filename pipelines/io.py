"""Reading and writing files: the only module that touches paths for data, so failures are handled once.

Writes are atomic at the level an analyst sees: files are built in a hidden temporary folder beside the
target and moved into place only when everything succeeded, so a failed run leaves no half-written output.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import shutil
import signal
import tomllib
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import TYPE_CHECKING, BinaryIO

if TYPE_CHECKING:
    import polars as pl


STAGING_PREFIX = ".staging-"
FAULT_VARIABLE = "LARETURNS_FAULT_AT"


def fault_point(phase: str) -> None:
    """Where the tests stop a real run (LARETURNS_FAULT_AT=<phase>): the process dies as under kill -9, with no
    clean-up of any kind, so that what it leaves is what a crash leaves."""
    if os.environ.get(FAULT_VARIABLE) == phase:
        os.kill(os.getpid(), signal.SIGKILL)


@contextlib.contextmanager
def staged_output(target: Path, accumulate: tuple[str, ...] = (), name: str | None = None,
                  fault: str | None = None) -> Iterator[Path]:
    """A temporary folder inside target (.staging-<name>); on success its entries replace those of the same name in
    target, except the folders named in accumulate, whose entries are added to the folder of that name (a
    history). A failure before the move removes the folder; once the move has begun the folder stays, holding what
    was not moved yet, so that move_staged can finish it."""
    target.mkdir(parents=True, exist_ok=True)
    staging = target / f"{STAGING_PREFIX}{name or uuid.uuid4().hex}"
    staging.mkdir()
    try:
        yield staging
    except BaseException:
        shutil.rmtree(staging, ignore_errors=True)
        raise
    move_staged(staging, target, accumulate, fault)


def move_staged(staging: Path, target: Path, accumulate: tuple[str, ...] = (), fault: str | None = None) -> None:
    """Every entry still in the staging folder moved into target, then the folder removed. Each step can be done
    again after a crash (a half-removed old entry is removed again), so a move cut short can be finished."""
    moved = 0
    for entry in sorted(staging.iterdir()):
        if entry.name in accumulate:
            (target / entry.name).mkdir(exist_ok=True)
            moves = [(child, target / entry.name / child.name) for child in sorted(entry.iterdir())]
        else:
            moves = [(entry, target / entry.name)]
        for source, destination in moves:
            if destination.is_dir() and not destination.is_symlink():
                shutil.rmtree(destination)
            os.replace(source, destination)
            moved += 1
            if moved == 1 and fault:
                fault_point(fault)
        if entry.is_dir():
            entry.rmdir()  # an accumulated folder, now empty
    staging.rmdir()


class CsvAppender:
    """One CSV written in chunks: the header once, then each chunk's rows."""

    def __init__(self, path: Path):
        self.path = path
        self.rows = 0
        self._handle: BinaryIO = path.open("wb")

    def append(self, frame: pl.DataFrame) -> None:
        frame.write_csv(self._handle, include_header=self._handle.tell() == 0)
        self.rows += frame.height

    def close(self) -> None:
        self._handle.close()


def write_csv(frame: pl.DataFrame, path: Path) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    frame.write_csv(path)


OWNER_ONLY = 0o600  # files holding personal data or unsuppressed values: readable by their owner alone


def restrict_new_files(root: Path | None = None, group: str | None = None) -> None:
    """From now on, everything this process creates is readable by its owner alone (files 0600, folders 0700),
    or also by the group (0640, 0750) when one is named: the group is set on the root folder, and the setgid bit
    makes everything created in it inherit the group."""
    os.umask(0o027 if group else 0o077)
    if group and root is not None:
        root.mkdir(parents=True, exist_ok=True)
        shutil.chown(root, group=group)
        root.chmod(0o2750)


def _atomically(path: Path, write, mode: int | None = None) -> None:
    """write(partial) beside the target, then renamed over it: readers never see half a file. With a mode, the
    file has it from its first byte (created with it, whatever the umask)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    partial = path.with_name(f".{path.name}.{uuid.uuid4().hex}.partial")
    try:
        if mode is not None:
            os.close(os.open(partial, os.O_CREAT | os.O_EXCL | os.O_WRONLY, mode))
            os.chmod(partial, mode)  # the umask may have taken bits off at creation
        write(partial)
        os.replace(partial, path)
    finally:
        partial.unlink(missing_ok=True)


def write_csv_atomic(frame: pl.DataFrame, path: Path) -> None:
    _atomically(path, frame.write_csv)


def write_parquet_atomic(frame: pl.DataFrame, path: Path) -> None:
    _atomically(path, frame.write_parquet)


def copy_atomic(source: Path, path: Path) -> None:
    _atomically(path, lambda partial: shutil.copyfile(source, partial))


def write_bytes_atomic(path: Path, data: bytes) -> None:
    _atomically(path, lambda partial: partial.write_bytes(data))


def write_text_atomic(path: Path, text: str, mode: int | None = None) -> None:
    _atomically(path, lambda partial: partial.write_text(text, encoding="utf-8"), mode)


def file_sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def _parsed(path: Path, parse, kind: str, parse_error: type[Exception]):
    try:
        return parse(path.read_text(encoding="utf-8"))
    except OSError as error:
        raise ValueError(f"{path}: cannot read ({error.strerror})") from None
    except parse_error as error:
        raise ValueError(f"{path}: not valid {kind} ({error})") from None


def read_json(path: Path):
    return _parsed(path, json.loads, "JSON", json.JSONDecodeError)


def read_toml(path: Path) -> dict:
    return _parsed(path, tomllib.loads, "TOML", tomllib.TOMLDecodeError)


def read_csv_text(path: Path) -> pl.DataFrame:
    """A CSV with every column as text (codes keep their leading zeros)."""
    import polars as pl  # here, so that a command that reads no CSV starts without it

    try:
        return pl.read_csv(path, infer_schema=False)
    except (OSError, pl.exceptions.PolarsError) as error:
        raise ValueError(f"{path}: cannot read as CSV ({str(error).splitlines()[0]})") from None
