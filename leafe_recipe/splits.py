"""Held out means held out: the splits of a run, compared by content before any compute is spent.

Tasks are the same problem when they share a content fingerprint (EnvFamily.fingerprint: a
Sokoban room up to symmetry, a coding statement or its test inputs, an ALFWorld game, a
ScienceWorld variation, a WebShop goal), whatever their ids or seeds; coding statements are
also compared for near-duplicates with lm-eval's decontamination janitor (a shared 13-gram of
normalised words, its definition of contamination). A run's audit has, per environment:

- each split's tasks and distinct tasks (by fingerprint);
- the overlaps between train, validation and test (exact, and near for text);
- the overlaps between the held-out splits and what the starting model learned from (its
  manifest, leafe_recipe/manifest.py: the tiny and micro models' build rooms, a checkpoint's
  training tasks and its parents'); a model without a manifest (a hub model) is reported as
  unknown, not as clean.

The app (`audit_run`) stops before any method runs when the split it evaluates on overlaps any
of them, naming the counts, a few examples and the override (`allow_overlap=true`, which runs
anyway; results.json then carries the audit and `leafe-report` marks every affected number).

    leafe-splits experiment=micro_sokoban     # the audit alone, for any config; exit status 1 on any overlap
"""

from __future__ import annotations

import contextlib
import io
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any

from leafe_recipe.envs.base import EnvFamily, Task
from leafe_recipe.manifest import Manifest

NGRAM = 13  # lm-eval's janitor default: a shared 13-gram of normalised words is contamination
EXAMPLES = 3  # overlapping pairs named per comparison
HELD_OUT = ("validation", "test")


class Overlap(RuntimeError):
    """The split a run evaluates on is not held out by content; the message has the counts and the override."""


@dataclass
class Pair:
    """How many tasks of `b` are the same problem as one of `a` (exact) or a near-duplicate (near)."""

    a: str
    b: str
    exact: int = 0
    near: int = 0
    examples: list[str] = field(default_factory=list)

    @property
    def overlaps(self) -> int:
        return self.exact + self.near


def _fingerprints(family: EnvFamily, task: Task) -> set[tuple[str, str]]:
    return set(family.fingerprint(task).items())


def _janitor():
    """lm-eval's janitor, imported without the warning it prints when its C++ helper is absent."""
    with contextlib.redirect_stdout(io.StringIO()), contextlib.redirect_stderr(io.StringIO()):
        from lm_eval.decontamination.janitor import Janitor, word_ngrams
    return Janitor(ngram_n=NGRAM), word_ngrams


def near_duplicates(learned: Iterable[tuple[str, str]], evaluated: Iterable[tuple[str, str]]) -> dict[str, str]:
    """Evaluated label -> a learned label it shares a 13-gram with (the janitor's normalisation:
    lower case, punctuation removed), for (label, text) pairs."""
    janitor, ngrams = _janitor()
    owner: dict[str, str] = {}
    for label, text in learned:
        janitor.register_contaminant_python(text)
        for gram in ngrams(janitor.normalize_string(text), NGRAM):
            owner.setdefault(gram, label)
    out = {}
    for label, text in evaluated:
        hit = next((owner[g] for g in ngrams(janitor.normalize_string(text), NGRAM) if g in janitor.dirt_ngrams), None)
        if hit is not None:
            out[label] = hit
    return out


def compare(a: str, learned: list[tuple[Task, EnvFamily]], b: str, evaluated: list[tuple[Task, EnvFamily]]) -> Pair:
    """Which tasks of `evaluated` (split b) are problems of `learned` (split a)."""
    pair = Pair(a, b)
    index: dict[tuple[str, str], Task] = {}
    for task, family in learned:
        for fp in _fingerprints(family, task):
            index.setdefault(fp, task)
    exact = set()
    for task, family in evaluated:
        hit = next((index[fp] for fp in sorted(_fingerprints(family, task)) if fp in index), None)
        if hit is not None:
            exact.add(task.id)
            if len(pair.examples) < EXAMPLES:
                pair.examples.append(f"{b} {task.env}/{task.id} = {a} {hit.env}/{hit.id}")
    pair.exact = len(exact)
    texts = lambda items: [(f"{t.env}/{t.id}", f.near_text(t)) for t, f in items if f.near_text is not None]  # noqa: E731
    near = {k: v for k, v in near_duplicates(texts(learned), texts(evaluated)).items() if k.split("/", 1)[1] not in exact}
    pair.near = len(near)
    for label, other in list(near.items())[: max(0, EXAMPLES - len(pair.examples))]:
        pair.examples.append(f"{b} {label} ~ {a} {other} (a shared {NGRAM}-gram)")
    return pair


def against_manifest(manifest: Manifest, b: str, evaluated: list[tuple[Task, EnvFamily]]) -> Pair:
    """Which tasks of `evaluated` the model learned from (exact fingerprints: a manifest holds no text)."""
    pair = Pair("model", b)
    known = manifest.fingerprints()
    stages = {fp: e["stage"] for e in manifest.learned_from for fp in e["fingerprint"].items()}
    for task, family in evaluated:
        hit = sorted(_fingerprints(family, task) & known)
        if hit:
            pair.exact += 1
            if len(pair.examples) < EXAMPLES:
                pair.examples.append(f"{b} {task.env}/{task.id} was learned from ({stages[hit[0]]})")
    return pair


def audit(
    splits: dict[str, list[Task]], family: EnvFamily, manifest: Manifest | None, model: str, also: dict[str, tuple[EnvFamily, list[Task]]] | None = None
) -> dict[str, Any]:  # fmt: skip
    """The audit of one run: `splits` of its environment (train, validation, test: those given),
    the starting model's manifest, and `also`: more environments' evaluation tasks (eval_also)."""
    tagged = {name: [(t, family) for t in tasks] for name, tasks in splits.items()}
    for env, (other, tasks) in (also or {}).items():
        tagged[f"{env} test"] = [(t, other) for t in tasks]
    names = list(tagged)
    pairs = [compare(a, tagged[a], b, tagged[b]) for i, a in enumerate(names) for b in names[i + 1 :]]
    held = [name for name in names if name != "train"]
    if manifest is not None:
        pairs += [against_manifest(manifest, name, tagged[name]) for name in held]
    return {
        "env": family.name,
        "model": model,
        "manifest": None if manifest is None else {"tasks": len(manifest.learned_from), "lineage": manifest.lineage, "complete": manifest.complete},
        "splits": {name: {"tasks": len(items), "distinct": distinct(items)} for name, items in tagged.items()},
        "pairs": [p.__dict__ | {"overlaps": p.overlaps} for p in pairs],
    }  # fmt: skip


def distinct(items: list[tuple[Task, EnvFamily]]) -> int:
    """Tasks that are distinct problems: a repeat shares a fingerprint with an earlier one."""
    seen: set[tuple[str, str]] = set()
    count = 0
    for task, family in items:
        prints = _fingerprints(family, task)
        count += not (prints & seen)
        seen |= prints
    return count


def overlaps_of(report: dict[str, Any], split: str) -> list[dict[str, Any]]:
    """The overlaps that make a run's numbers on `split` (and on its eval_also environments) not held
    out: with the train tasks, the model's manifest, or validation (tuned on) when evaluating on test."""
    evaluated = {split} | {name for name in report["splits"] if name.endswith(" test")}
    learned = {"train", "model", "validation"} - {split}
    return [p for p in report["pairs"] if p["overlaps"] and {p["a"], p["b"]} & evaluated and {p["a"], p["b"]} & learned]


def table(report: dict[str, Any]) -> str:
    """The audit as Markdown: splits with their sizes, then every comparison."""
    m = report["manifest"]
    known = "no manifest: what it learned from is unknown" if m is None else (
        f"manifest of {m['tasks']} tasks ({' -> '.join(m['lineage'])})" + ("" if m["complete"] else "; incomplete: a parent's data are unknown"))  # fmt: skip
    lines = [f"Splits of {report['env']}; model {report['model']} ({known})", "",
             "| split | tasks | distinct |", "|---|---|---|"]  # fmt: skip
    lines += [f"| {name} | {s['tasks']} | {s['distinct']} |" for name, s in report["splits"].items()]
    lines += ["", "| learned / held out | exact | near | examples |", "|---|---|---|---|"]
    for p in report["pairs"]:
        lines.append(f"| {p['a']} / {p['b']} | {p['exact']} | {p['near']} | {'; '.join(p['examples']) or '-'} |")
    return "\n".join(lines)


def check(report: dict[str, Any], split: str, allow: bool) -> list[dict[str, Any]]:
    """Stop (Overlap) when the evaluation split overlaps learned or other held-out tasks, unless `allow`."""
    found = overlaps_of(report, split)
    if found and not allow:
        details = "; ".join(f"{p['b']} vs {p['a']}: {p['exact']} exact, {p['near']} near ({'; '.join(p['examples'])})" for p in found)
        raise Overlap(
            f"the {split} tasks of {report['env']} are not held out by content: {details}. Nothing was run. Choose "
            "settings whose splits are disjoint (`leafe-splits <same overrides>` prints the audit), or run anyway with "
            "allow_overlap=true: results.json then records the overlap and leafe-report marks every affected number"
        )
    return found
