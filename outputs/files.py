"""Files: the only module that writes one (atomically, and owner-only where asked), with the readers and the hash.

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
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import TYPE_CHECKING, BinaryIO

from schemas.config import read_parsed

if TYPE_CHECKING:
    import polars as pl


STAGING_PREFIX = ".staging-"
FAULT_VARIABLE = "LARETURNS_FAULT_AT"


def fault_point(phase: str) -> None:
    """Where the tests stop a real run (LARETURNS_FAULT_AT=<phase>): the process dies as under kill -9, with no
    clean-up of any kind, so that what it leaves is what a crash leaves."""
    if os.environ.get(FAULT_VARIABLE) == phase:
        os.kill(os.getpid(), signal.SIGKILL)


def staging_folder(target: Path, name: str) -> Path:
    return target / f"{STAGING_PREFIX}{name}"


@contextlib.contextmanager
def staged_output(target: Path, accumulate: tuple[str, ...] = (), name: str | None = None,
                  fault: str | None = None) -> Iterator[Path]:
    """A temporary folder inside target (.staging-<name>); on success its entries replace those of the same name in
    target, except the folders named in accumulate, whose entries are added to the folder of that name (a
    history). A failure before the move removes the folder; once the move has begun the folder stays, holding what
    was not moved yet, so that move_staged can finish it."""
    target.mkdir(parents=True, exist_ok=True)
    staging = staging_folder(target, name or uuid.uuid4().hex)
    staging.mkdir()
    try:
        yield staging
    except BaseException:
        shutil.rmtree(staging, ignore_errors=True)
        raise
    move_staged(staging, target, accumulate, fault)


def move_staged(staging: Path, target: Path, accumulate: tuple[str, ...] = (), fault: str | None = None) -> None:
    """Every entry still in the staging folder moved into target, then the folder removed. accumulate names folders
    by their path under target (06_history/releases): their entries are added to what is there, never replacing
    it, and a folder above one is merged, not replaced. Each step can be done again after a crash (a half-removed
    old entry is removed again), so a move cut short can be finished."""
    for moved, (source, destination) in enumerate(_moves(staging, target, "", accumulate), start=1):
        destination.parent.mkdir(parents=True, exist_ok=True)
        if destination.is_dir() and not destination.is_symlink():
            shutil.rmtree(destination)
        os.replace(source, destination)
        if moved == 1 and fault:
            fault_point(fault)
    for folder in sorted((p for p in staging.rglob("*") if p.is_dir()), key=lambda p: len(p.parts), reverse=True):
        folder.rmdir()  # an accumulated or merged folder, now empty
    staging.rmdir()


def _moves(source: Path, target: Path, under: str, accumulate: tuple[str, ...]) -> list[tuple[Path, Path]]:
    moves = []
    for entry in sorted(source.iterdir()):
        name = f"{under}{entry.name}"
        if name in accumulate:
            moves += [(child, target / entry.name / child.name) for child in sorted(entry.iterdir())]
        elif any(a.startswith(f"{name}/") for a in accumulate):
            moves += _moves(entry, target / entry.name, f"{name}/", accumulate)
        else:
            moves.append((entry, target / entry.name))
    return moves


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


def partial_path(path: Path, suffix: str = "partial") -> Path:
    """Where a file is built beside its target before it is renamed over it: hidden, and named so that what a
    crash leaves is recognised (pipelines/store/commit.py half_written) and its target known."""
    return path.with_name(f".{path.name}.{uuid.uuid4().hex}.{suffix}")


def target_of(partial: Path) -> Path:
    return partial.with_name(partial.name[1:].rsplit(".", 2)[0])


def put_in_place(partial: Path, path: Path) -> None:
    """A file built beside its target (partial_path) renamed over it, in one step."""
    os.replace(partial, path)


@contextlib.contextmanager
def replacements(contents: dict[Path, bytes]) -> Iterator[Callable[[], None]]:
    """Each new content written beside its file first; calling the yielded function moves them all into place.
    Left uncalled (an error before it), the originals stay as they were and the partial files are removed."""
    partials = {path: partial_path(path) for path in contents}
    try:
        for path, partial in partials.items():
            partial.write_bytes(contents[path])

        def replace_all() -> None:
            for path, partial in partials.items():
                put_in_place(partial, path)
        yield replace_all
    finally:
        for partial in partials.values():
            partial.unlink(missing_ok=True)


def _atomically(path: Path, write, mode: int | None = None) -> None:
    """write(partial) beside the target, then renamed over it: readers never see half a file. With a mode, the
    file has it from its first byte (created with it, whatever the umask)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    partial = partial_path(path)
    try:
        if mode is not None:
            os.close(os.open(partial, os.O_CREAT | os.O_EXCL | os.O_WRONLY, mode))
            os.chmod(partial, mode)  # the umask may have taken bits off at creation
        write(partial)
        put_in_place(partial, path)
    finally:
        partial.unlink(missing_ok=True)


def append_bytes(path: Path, data: bytes) -> None:
    """data added at the end of the file (the ledger's JSON-lines copy): a crash can cut only the last line short,
    which the ledger's recovery detects and completes."""
    path.parent.mkdir(parents=True, exist_ok=True)
    with path.open("ab") as handle:
        handle.write(data)


@contextlib.contextmanager
def exclusive_lock(path: Path, busy: Callable[[], Exception]) -> Iterator[None]:
    """An advisory lock held on path while the block runs; raises busy() at once if another process holds it."""
    import fcntl

    path.parent.mkdir(parents=True, exist_ok=True)
    with path.open("a") as handle:
        try:
            fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            raise busy() from None
        try:
            yield
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)


def copy_folder(source: Path, target: Path) -> None:
    shutil.copytree(source, target)


def write_csv_atomic(frame: pl.DataFrame, path: Path) -> None:
    _atomically(path, frame.write_csv)


def write_parquet_atomic(frame: pl.DataFrame, path: Path) -> None:
    _atomically(path, frame.write_parquet)


def copy_atomic(source: Path, path: Path) -> None:
    _atomically(path, lambda partial: shutil.copyfile(source, partial))


def write_atomically(path: Path, write: Callable[[Path], None]) -> None:
    """A file a library writes itself (write(partial)), put in place whole."""
    _atomically(path, write)


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


def read_json(path: Path):
    return read_parsed(path, json.loads, "JSON", (json.JSONDecodeError,))


def read_csv_text(path: Path) -> pl.DataFrame:
    """A CSV with every column as text (codes keep their leading zeros)."""
    import polars as pl  # here, so that a command that reads no CSV starts without it

    try:
        return pl.read_csv(path, infer_schema=False)
    except (OSError, pl.exceptions.PolarsError) as error:
        raise ValueError(f"{path}: cannot read as CSV ({str(error).splitlines()[0]})") from None
