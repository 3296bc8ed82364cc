"""Model names and identities: which models this project builds itself, and what a model is.

`tiny` and `micro` name models this project builds locally, offline (leafe_recipe/tiny.py and
micro.py: each module has `build()` and `manifest()`); any other name is a hub id or a local
checkpoint directory, passed to `from_pretrained` as it is.

A built model is cached under its build key: a hash of what it learned from (its generated
training examples), its build settings and the library versions, never of source files, so
moving or renaming a function rebuilds nothing. `identity` names a model for stage and
evaluation keys by content rather than by path.
"""

from __future__ import annotations

import hashlib
import importlib
import json
from importlib.metadata import version
from pathlib import Path
from typing import Any, Callable

from leafe_recipe.manifest import Manifest, read
from leafe_recipe.records import write_json

BUILTIN = {"tiny": "leafe_recipe.tiny", "micro": "leafe_recipe.micro"}  # name -> its builder module
VERSIONED = ("torch", "transformers", "tokenizers", "openrlhf")  # libraries whose versions are part of a build key

# Files of a model directory that do not change what it computes.
_NOT_THE_MODEL = {"train.log", ".complete", ".complete.json"}


def resolve(name_or_path: str) -> str:
    """A built-in name -> its directory (built on first use); anything else unchanged."""
    if name_or_path in BUILTIN:
        return str(importlib.import_module(BUILTIN[name_or_path]).build())
    return name_or_path


def manifest_of(name_or_path: str) -> Manifest | None:
    """What a model learned from, without building it: a built-in model's from its build
    settings, a checkpoint's from its manifest file; None for a hub id or a directory without one."""
    if name_or_path in BUILTIN:
        return importlib.import_module(BUILTIN[name_or_path]).manifest()
    return read(name_or_path)


def versions() -> dict[str, str]:
    out = {}
    for package in VERSIONED:
        try:
            out[package] = version(package)
        except Exception:  # not installed: a build key still says so
            out[package] = "absent"
    return out


def build_key(examples: list[Any], settings: dict[str, Any]) -> str:
    """The key of a built model: its training examples (by content), settings and library versions."""
    digest = hashlib.sha256()
    for example in examples:
        digest.update(json.dumps(example, sort_keys=True).encode() + b"\n")
    digest.update(json.dumps({"settings": settings, "versions": versions()}, sort_keys=True).encode())
    return digest.hexdigest()[:12]


def known_key(name: str, recipe: dict[str, Any], sources: list[Path]) -> tuple[str | None, Callable[[str], None]]:
    """The build key recorded for this exact recipe (settings and generator sources), if any, and
    a function that records one: a shortcut that skips regenerating examples that take minutes to
    make. The key itself never depends on the sources (build_key): when they change, the examples
    are made again, and an unchanged set of examples finds the model already built."""
    from leafe_recipe import cache_dir

    digest = hashlib.sha256(json.dumps({"recipe": recipe, "versions": versions()}, sort_keys=True).encode())
    for source in sources:
        digest.update(source.read_bytes())
    recipe_hash = digest.hexdigest()[:16]
    index = cache_dir() / f"{name}-keys.json"
    known = json.loads(index.read_text()) if index.is_file() else {}

    def record(key: str) -> None:
        index.parent.mkdir(parents=True, exist_ok=True)
        current = json.loads(index.read_text()) if index.is_file() else {}
        write_json(index, {**current, recipe_hash: key})

    return known.get(recipe_hash), record


def identity(name_or_path: str) -> dict[str, str]:
    """What stage and evaluation keys say about a model: a hub id as given; a checkpoint of this
    project by its manifest's identity; another local directory by a hash of its files' names,
    sizes and modification times (reading the weights of a large model would take minutes). No path:
    a moved run folder keeps its keys."""
    path = Path(name_or_path)
    if not path.is_dir():
        return {"hub_id": name_or_path}
    manifest = read(path)
    if manifest is not None and manifest.identity:
        return {"identity": manifest.identity}
    files = sorted(
        (f.relative_to(path).as_posix(), f.stat().st_size, f.stat().st_mtime_ns)
        for f in path.rglob("*")
        if f.is_file() and f.name not in _NOT_THE_MODEL
    )
    return {"files": hashlib.sha256(json.dumps(files).encode()).hexdigest()[:16]}
