"""How the pipeline's stages talk to each other through files, and how a rerun resumes.

Each stage writes one record per task. A record is one `write` of one line followed
by flush and fsync, so a killed run leaves at most a torn last line; `JsonlWriter`
cuts that line off and reports which keys are already done, so a rerun skips them
and never duplicates or loses a record.

Resume is keyed by what produced an output: a stage states its key (the model, the
data, every setting it depends on) with `claim`, which writes it beside the output the
first time and, on a rerun, lets the stage go on only if the key is the same; a
different key stops with a `StageMismatch` that names what changed. Caches (finished
evaluations) are files named by their key's hash, so they are reused only on a match.
"""

from __future__ import annotations

import hashlib
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


class StageMismatch(RuntimeError):
    """An output on disk was made with other settings than this run's; the message names them."""


def key_hash(key: Any) -> str:
    return hashlib.sha256(json.dumps(key, sort_keys=True, default=str).encode()).hexdigest()[:16]


def key_file(output: Path) -> Path:
    return output.with_name(output.name + ".key.json")


def claim(output: str | Path, key: dict[str, Any], remedy: str) -> None:
    """Let a stage (re)write `output` only if it was made with `key`, or not made yet.

    The key is written to `<output>.key.json` beside it. An output that exists with
    another key, or with none, raises StageMismatch naming the fields that differ and
    `remedy` (what the user can do)."""
    output = Path(output)
    path = key_file(output)
    if path.exists():
        old, new = _flat(json.loads(path.read_text())), _flat(json.loads(json.dumps(key, default=str)))
        if old == new:
            return
        changed = sorted(k for k in set(old) | set(new) if old.get(k, _ABSENT) != new.get(k, _ABSENT))
        details = "; ".join(f"{k}: {_short(old.get(k, _ABSENT))} -> {_short(new.get(k, _ABSENT))}" for k in changed)
        raise StageMismatch(f"{output} was made with other settings ({details}). {remedy}")
    if output.exists():
        raise StageMismatch(f"{output} exists but does not say which settings made it (no {path.name}). {remedy}")
    output.parent.mkdir(parents=True, exist_ok=True)
    write_json(path, key)


def write_jsonl(path: str | Path, records: list[dict[str, Any]]) -> None:
    """A whole derived file (SFT data): replaced at once, never left half-written."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(path.name + ".tmp")
    with open(tmp, "w", encoding="utf-8") as f:
        for r in records:
            f.write(json.dumps(r, ensure_ascii=False) + "\n")
        f.flush()
        os.fsync(f.fileno())
    os.replace(tmp, path)


def write_json(path: str | Path, value: Any) -> None:
    """Whole-file replace: a killed run leaves the old file or the new one, never half of one."""
    path = Path(path)
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_text(json.dumps(value, indent=2, default=str))
    os.replace(tmp, path)


_ABSENT = "(absent)"


def _flat(value: Any, prefix: str = "") -> dict[str, Any]:
    """{"a": {"b": 1}} -> {"a.b": 1}: mismatches are named by their full setting name."""
    if not isinstance(value, dict) or not value:
        return {prefix: value}
    out: dict[str, Any] = {}
    for k, v in value.items():
        out.update(_flat(v, f"{prefix}.{k}" if prefix else str(k)))
    return out


def _short(value: Any, limit: int = 120) -> str:
    if value == _ABSENT:
        return value
    text = json.dumps(value, sort_keys=True, default=str)
    return text if len(text) <= limit else text[:limit] + "..."
