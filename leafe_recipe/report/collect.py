"""The cells a report is made of: read from `leafe` run and sweep folders (results.json and the
lm-eval per-sample logs they point to), or from the compact per-cell files a report keeps.

Every report folder holds `cells/`: one small JSON file per evaluated model of each cell, with
the per-problem 0/1 correctness of every sample (as hex strings of bits), the cell's ledger,
its split and its splits audit; and a cell that did not run, with why. `leafe-report
--from-summary <report folder>` rebuilds the whole report from those files alone, so every
number a report publishes can be recomputed from files small enough to commit.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from leafe_recipe.compare import CompareError, Samples, load_run
from leafe_recipe.records import read_jsonl, write_json

TABLE1_ENVS = ("webshop", "alfworld", "scienceworld", "sokoban")  # the paper's Table 1, in its column order
BUDGET_FIELDS = ("tasks", "env_steps", "replay_steps", "model_calls", "gen_tokens", "expert_steps", "train_examples", "gradient_steps")


class ReportError(ValueError):
    """The folders cannot be reported as given; the message says why and what to do."""


@dataclass
class Entry:
    """One evaluated model of one cell on one environment, or a cell that did not run."""

    env: str  # evaluated on
    trained_on: str  # the cell's environment (differs for eval_also)
    model: str
    row: str
    seed: int
    source: str  # the cell's results.json (or its compact file)
    own: bool  # the cell trained this row (not a base model it also evaluated)
    split: str = "test"
    samples: Samples | None = None
    ledger: dict[str, Any] | None = None
    absent: str | None = None  # "not run: <reason>" (Unavailable here) or "failed: <reason>"
    audit: dict[str, Any] | None = None  # the cell's splits audit (leafe_recipe/splits.py), where it has one
    primary: list[str] = field(default_factory=list)  # the comparisons its experiment declared primary

    @property
    def overlapping(self) -> bool:
        """The cell ran although its evaluated tasks overlap what was learned (allow_overlap=true)."""
        return bool(self.audit and self.audit.get("flagged"))


@dataclass
class Collected:
    entries: list[Entry] = field(default_factory=list)
    searches: list[dict[str, Any]] = field(default_factory=list)  # method=search_compare cells
    cells: int = 0
    notes: list[str] = field(default_factory=list)


def row_key(label: str, config: dict[str, Any]) -> str | None:
    """The table row of an evaluated model `label` of a cell; None for a model no table shows
    (the starting checkpoint of a method given `method.init`)."""
    if label == "init":
        return None
    method = config.get("method", {})
    if label == "leafe" and method.get("ablation") == "rehearsal_only":
        return "leafe_rehearsal_only"
    if label == "leafe" and method.get("explore", {}).get("reflection") == "oracle":
        return "leafe_oracle_reflection"
    return label


def method_row(config: dict[str, Any]) -> str:
    """The row of the model a cell's method trains, by the method and its variant."""
    m = config.get("method", {})
    name = m.get("name", "?")
    if name == "early_experience":
        return f"early_experience_{m.get('variant', 'iwm')}"
    return row_key(name, config) or name


def cell_row(config: dict[str, Any]) -> str:
    """The row a cell trains (where it did not run, the row that says so): `report_row` where the
    cell names one (a control: the same method at another budget), else its method's."""
    return config.get("report_row") or method_row(config)


def collect(folders: list[Path]) -> Collected:
    out = Collected()
    files = sorted({p.resolve() for folder in folders for p in _results_files(folder)})
    if not files:
        raise ReportError(f"no results.json under {', '.join(map(str, folders))}: give the folders of `leafe` runs or sweeps")
    for path in files:
        results = json.loads(path.read_text())
        config = results.get("config", {})
        cell = {"trained_on": results["env"], "model": str(results["model"]), "seed": int(results["seed"]), "source": str(path),
                "split": results.get("split", "test"), "audit": _audit(results.get("heldout")), "primary": list(config.get("primary") or [])}  # fmt: skip
        out.cells += 1
        if "not_run" in results or "failed" in results:
            absent = f"not run: {results['not_run']}" if "not_run" in results else f"failed: {results['failed']}"
            out.entries.append(Entry(env=results["env"], row=cell_row(config), own=True, absent=absent, **cell))
            continue
        if "search" in results:
            out.searches.append(_search(results["search"], path.parent))
        own = cell_row(config)
        for label, summary in results.get("runs", {}).items():
            row = row_key(label, config)
            if row is None:
                continue
            row = own if row == method_row(config) else row
            is_own = row == own  # a base model evaluated by a cell that trains another is not its own
            ledger = _ledger(results, method_row(config)) if is_own else None
            for env, s in [(results["env"], summary), *summary.get("also", {}).items()]:
                samples = _samples(s, path)
                out.entries.append(Entry(env=env, row=row, own=is_own, samples=samples, ledger=ledger, **cell))
    out.entries = _dedupe(out.entries, out.notes)
    return out


def combine(parts: list[Collected]) -> Collected:
    """One report's cells from several sources (a report's cells/ and new runs): a model met twice
    is kept once, as within one sweep (_dedupe)."""
    out = Collected()
    for c in parts:
        out.entries += c.entries
        out.searches += c.searches
        out.cells += c.cells
        out.notes += c.notes
    out.entries = _dedupe(out.entries, out.notes)
    return out


def _audit(heldout: dict[str, Any] | None) -> dict[str, Any] | None:
    """What a report shows of a cell's splits audit: split sizes, comparisons with overlaps, flagged ones."""
    if not heldout:
        return None
    pairs = [{k: p[k] for k in ("a", "b", "exact", "near")} for p in heldout.get("pairs", [])]
    return {"splits": heldout.get("splits", {}), "pairs": pairs, "manifest": heldout.get("manifest"),
            "flagged": [{k: p[k] for k in ("a", "b", "exact", "near")} for p in heldout.get("flagged", [])]}  # fmt: skip


def _search(search: dict[str, Any], folder: Path) -> dict[str, Any]:
    """A search_compare cell with its attempts read in (Table 3 needs nothing else)."""
    attempts = {strategy: {json.dumps(r["task"], sort_keys=True): {k: r[k] for k in ("attempts", "model_calls")}
                           for r in read_jsonl(folder / name)} for strategy, name in search["files"].items()}  # fmt: skip
    return {k: v for k, v in search.items() if k != "files"} | {"attempts": attempts}


def _ledger(results: dict[str, Any], row: str) -> dict[str, Any] | None:
    """What the cell's method spent; LEAFE + RL's is GRPO's and LEAFE's together."""
    ledger = results.get("ledger")
    if row != "leafe_rl" or ledger is None:
        return ledger
    grpo = results.get("grpo", {})
    out: dict[str, Any] = {"tasks": ledger.get("tasks")}
    for f in BUDGET_FIELDS[1:]:
        a, b = ledger.get(f, 0), grpo.get(f, 0)
        out[f] = None if a is None or b is None else a + b
    return out


def _results_files(folder: Path) -> list[Path]:
    folder = Path(folder)
    if folder.is_file() and folder.name == "results.json":
        return [folder]
    if not folder.is_dir():
        raise ReportError(f"{folder}: no such folder")
    return [p for p in folder.rglob("results.json") if "checkpoint" not in p.parts]


def _samples(summary: dict[str, Any], results: Path) -> Samples:
    """The per-sample log of one evaluation. A sweep folder that was moved is looked up by the
    evaluation's own folder name (<task>-<hash>) below the run and its sweep."""
    where = Path(summary["samples_dir"])
    task = summary.get("task")
    if not where.exists():
        names = [part for part in where.parts if re.fullmatch(r".+-[0-9a-f]{16}", part)]
        found = [p for root in (results.parent, results.parent.parent) for name in names[-1:] for p in root.rglob(name)]
        if not found:
            raise ReportError(
                f"{results}: the per-sample log {where} is missing (a moved or pruned run folder?); "
                "keep each run's eval folder and its sweep's eval_cache beside it"
            )
        where = found[0]
    try:
        runs = load_run(where, task)
    except CompareError as err:
        raise ReportError(f"{results}: {err}") from None
    return next(iter(runs.values()))


def _dedupe(entries: list[Entry], notes: list[str]) -> list[Entry]:
    """One entry per (environment, trained on, model, row, seed): a cell's own model over a base
    it evaluated by the way; between two cells' own, the first (named in the notes)."""
    kept: dict[tuple, Entry] = {}
    for e in entries:
        key = (e.env, e.trained_on, e.model, e.row, e.seed)
        old = kept.get(key)
        if old is None or (e.own and not old.own) or (old.absent and not e.absent):
            kept[key] = e
        elif e.own and old.own and e.samples is not None and old.samples is not None and e.source != old.source:
            if e.samples.correct != old.samples.correct:
                notes.append(f"{e.row} on {e.env} (model {e.model}, seed {e.seed}) is in {old.source} and "
                             f"{e.source}: the report uses the first")  # fmt: skip
    return list(kept.values())


# --------------------------------------------------------------------------- #
# The compact per-cell files
# --------------------------------------------------------------------------- #


def _bits(correct: list[int]) -> str:
    """A 0/1 list as hex (4 samples per digit), padded on the right; its length is stored beside it."""
    text = "".join(map(str, correct))
    text += "0" * (-len(text) % 4)
    return "".join(f"{int(text[i : i + 4], 2):x}" for i in range(0, len(text), 4))


def _unbits(hexes: str, n: int) -> list[int]:
    return [int(b) for h in hexes for b in f"{int(h, 16):04b}"][:n]


def write_cells(c: Collected, folder: Path) -> None:
    """cells/*.json under a report folder (see the module docstring)."""
    out = folder / "cells"
    out.mkdir(parents=True, exist_ok=True)
    for old in out.glob("*.json"):
        old.unlink()
    for i, e in enumerate(sorted(c.entries, key=lambda e: (e.trained_on, e.env, e.model, e.row, e.seed))):
        record = {k: getattr(e, k) for k in ("env", "trained_on", "model", "row", "seed", "own", "split", "ledger", "absent", "audit", "primary")}
        if e.samples is not None:
            s = e.samples
            record["samples"] = {"task": s.task, "n": {p: len(v) for p, v in s.correct.items()},
                                 "correct": {p: _bits(v) for p, v in s.correct.items()}}  # fmt: skip
        name = re.sub(r"[^A-Za-z0-9._-]+", "_", f"{i:03d}_{e.row}_{e.env}_from_{e.trained_on}_{Path(e.model).name}_seed{e.seed}")
        write_json(out / f"{name}.json", record)
    for i, s in enumerate(c.searches):
        write_json(out / f"search_{i:03d}.json", {**s, "kind": "search"})
    write_json(out / "index.json", {"kind": "index", "cells": c.cells, "notes": c.notes})


def read_cells(folder: Path) -> Collected:
    """The Collected of a report folder's cells/ (what --from-summary rebuilds from)."""
    files = sorted((Path(folder) / "cells").glob("*.json"))
    if not files:
        raise ReportError(f"{folder}: no cells/*.json; --from-summary takes a report folder that leafe-report wrote")
    out = Collected()
    for path in files:
        record = json.loads(path.read_text())
        if record.get("kind") == "index":
            out.cells, out.notes = record["cells"], record["notes"]
            continue
        if record.get("kind") == "search":
            out.searches.append({k: v for k, v in record.items() if k != "kind"})
            continue
        samples = record.pop("samples", None)
        entry = Entry(**record, source=str(path))
        if samples is not None:
            correct = {p: _unbits(h, samples["n"][p]) for p, h in samples["correct"].items()}
            entry.samples = Samples(task=samples["task"], path=path, correct=correct)
        out.entries.append(entry)
    return out
