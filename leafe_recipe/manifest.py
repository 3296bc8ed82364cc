"""What a checkpoint this project writes says about itself: `leafe_manifest.json` beside its
config.json.

- `prompt`: the prompt settings it was trained with (history window, generation length, the
  environment), which the `leafe` app and `leafe-agent` evaluate it with unless told otherwise;
- `learned_from`: every task it learned from, with its family, id and content fingerprint
  (EnvFamily.fingerprint), its parent's included, so "LEAFE + RL" carries GRPO's tasks and the
  micro model's build rooms reach every checkpoint trained from it;
- `lineage`: the stages that made it, oldest first; `complete` is false when a parent's own
  training data are unknown (a hub model): the held-out check can only vouch for what is listed;
- `identity`: what the checkpoint is, independent of where it lies (the key of the stage that
  trained it), so evaluation caches survive a moved run folder.

The held-out check (leafe_recipe/splits.py) compares evaluation tasks against `learned_from`.
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from leafe_recipe.envs.base import EnvFamily, Task
from leafe_recipe.records import key_hash, write_json

MANIFEST = "leafe_manifest.json"


@dataclass
class Manifest:
    prompt: dict[str, Any] | None  # {"history_window", "max_new_tokens", "env"}; None: not trained by a method of this project
    learned_from: list[dict[str, Any]] = field(default_factory=list)  # {"env", "id", "fingerprint", "stage"}
    lineage: list[str] = field(default_factory=list)
    complete: bool = True
    identity: str = ""

    def fingerprints(self) -> set[tuple[str, str]]:
        """(identity name, value) of every task learned from."""
        return {(name, value) for e in self.learned_from for name, value in e["fingerprint"].items()}


def learned(family: EnvFamily, tasks: list[Task], stage: str) -> list[dict[str, Any]]:
    """Manifest entries for `tasks` of `family`, learned from in `stage`."""
    return [{"env": t.env, "id": t.id, "fingerprint": family.fingerprint(t), "stage": stage} for t in tasks]


def read(model: str | Path) -> Manifest | None:
    """The manifest of a checkpoint directory; None for a hub id or a directory without one."""
    path = Path(model, MANIFEST)
    if not path.is_file():
        return None
    return Manifest(**json.loads(path.read_text()))


def inherit(
    before: Manifest | None, parent: str, stage: str, entries: list[dict[str, Any]], prompt: dict[str, Any] | None, identity: Any
) -> Manifest:
    """The manifest of a checkpoint trained from `parent` (whose manifest is `before`, None where it
    has none) on `entries`: the parent's tasks and lineage, then these."""
    if before is None:
        before = Manifest(prompt=None, lineage=[f"{parent} (its own training data unknown)"], complete=False)
    return Manifest(
        prompt=prompt,
        learned_from=before.learned_from + entries,
        lineage=before.lineage + [stage],
        complete=before.complete,
        identity=key_hash(identity),
    )


def write(checkpoint: str | Path, manifest: Manifest) -> None:
    write_json(Path(checkpoint, MANIFEST), asdict(manifest))
