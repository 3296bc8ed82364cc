"""Append-only, resumable JSON Lines: how the pipeline's stages talk to each other.

Each stage writes one record per task. A record is one `write` of one line followed
by flush and fsync, so a killed run leaves at most a torn last line; `open_resumable`
cuts that line off and reports which keys are already done, so a rerun skips them
and never duplicates or loses a record.
"""

from __future__ import annotations

import json
import os
from collections.abc import Iterator
from pathlib import Path
from typing import Any, Callable


def read_jsonl(path: str | Path) -> Iterator[dict[str, Any]]:
    """Complete records only: a torn last line (a killed writer) is skipped."""
    with open(path, encoding="utf-8") as f:
        for line in f:
            if line.endswith("\n"):
                yield json.loads(line)


class JsonlWriter:
    def __init__(self, path: str | Path, key: Callable[[dict[str, Any]], str]):
        """Open `path` for appending, after repairing a torn tail; `key` names a record's task."""
        self.path = Path(path)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self.key = key
        self.done: set[str] = set()
        if self.path.exists():
            with open(self.path, "rb+") as f:
                data = f.read()
                good = data.rfind(b"\n") + 1  # everything after the last newline is torn
                if good < len(data):
                    f.truncate(good)
            self.done = {key(r) for r in read_jsonl(self.path)}
        self._file = open(self.path, "a", encoding="utf-8")

    def write(self, record: dict[str, Any]) -> None:
        k = self.key(record)
        if k in self.done:
            raise ValueError(f"{self.path}: a record for {k!r} is already written")
        self._file.write(json.dumps(record, ensure_ascii=False) + "\n")
        self._file.flush()
        os.fsync(self._file.fileno())
        self.done.add(k)

    def close(self) -> None:
        self._file.close()

    def __enter__(self) -> "JsonlWriter":
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
