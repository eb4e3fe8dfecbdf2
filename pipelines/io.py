"""Reading and writing files: the only module that touches paths for data, so failures are handled once.

Writes are atomic at the level an analyst sees: files are built in a hidden temporary folder beside the
target and moved into place only when everything succeeded, so a failed run leaves no half-written output.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import BinaryIO

import polars as pl


@contextlib.contextmanager
def staged_output(target: Path) -> Iterator[Path]:
    """A temporary folder inside target; on success its entries replace those of the same name in target."""
    target.mkdir(parents=True, exist_ok=True)
    staging = target / f".staging-{uuid.uuid4().hex}"
    staging.mkdir()
    try:
        yield staging
        for entry in sorted(staging.iterdir()):
            destination = target / entry.name
            if destination.is_dir() and not destination.is_symlink():
                shutil.rmtree(destination)
            os.replace(entry, destination)
    finally:
        shutil.rmtree(staging, ignore_errors=True)


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
