"""Result summaries, and `leafe-report`: a sweep's results in the paper's shapes.

    leafe-report multirun/2026-12-01/10-00-00 [more run or sweep folders] [--reference grpo] [--out DIR]

What a run prints (`markdown_table`, `ledger_table`) and the report over many runs. The
report reads every results.json under the folders given (one per sweep cell; a cell that
could not run holds `not_run`, one that failed `failed`, with the reason) and recomputes every number from lm-eval's
per-sample logs (`correct` lists per problem), never from the summaries:

- Pass@k per method, environment and model: the mean over problems (and seeds) of the
  unbiased estimator, with a percentile bootstrap CI: over problems, and with several seeds
  over seeds and problems (a two-level bootstrap, `compare.bootstrap_means`).
- Table 1 (agentic environments), Table 2 (coding trained and evaluated on itself),
  Table 5 (a model evaluated on an environment it was not trained on: `eval_also`),
  Table 4 (rehearsal-only vs full LEAFE), Table 3 (`method=search_compare`: independent
  sampling vs iterative refinement vs LEAFE's stage-1 tree on the train tasks).
- Paired differences against a reference method (default GRPO), as `leafe-compare`.
- Budgets from the ledgers; the paper's numbers beside ours where the model matches
  (leafe_recipe/paper_numbers.json, transcribed and unverified: the report says so).
- Pass@k curves, k = 1..n on a log axis, one PNG per environment and model.

Written to OUT (default: <first folder>/report): report.md, report.tex, report.json, curves/.
"""

from __future__ import annotations

import argparse
import json
import re
import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from leafe_recipe.compare import CompareError, Samples, bootstrap_means, interval, load_run
from leafe_recipe.passk import pass_at_k
from leafe_recipe.records import read_jsonl, write_json

def markdown_table(rows: dict[str, dict[str, Any]]) -> str:
    """One row per run (keyed by its label): Pass@k columns, then turns and invalid rate."""
    ks = sorted({k for r in rows.values() for k in r["pass_at_k"]}, key=int)
    head = ["run", *[f"Pass@{k}" for k in ks], "turns", "invalid"]
    lines = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    for label, r in rows.items():
        cells = [f"{100 * r['pass_at_k'][k]:.1f}" if k in r["pass_at_k"] else "" for k in ks]
        cells += [f"{r['mean_turns']:.1f}", f"{100 * r['invalid_action_rate']:.1f}%"]
        lines.append("| " + " | ".join([label, *cells]) + " |")
    return "\n".join(lines)


def paired_vs_base(rows: dict[str, dict[str, Any]], resamples: int = 10_000) -> str:
    """Each trained run minus the base model it started from, paired over the held-out tasks
    (leafe-compare's estimator), at Pass@1 and the largest k: what a single run can claim."""
    from leafe_recipe.compare import compare, format_result

    if "base" not in rows:
        return ""
    base = load_run(rows["base"]["samples_dir"], rows["base"]["task"])[rows["base"]["task"]]
    out = []
    for label, r in rows.items():
        if label == "base" or r.get("task") != rows["base"]["task"]:
            continue
        ks = sorted({1, min(r["n_samples"], rows["base"]["n_samples"])})
        result = compare(load_run(r["samples_dir"], r["task"])[r["task"]], base, ks, resamples)
        unresolved = [row["k"] for row in result["rows"] if row["ci_low"] <= 0 <= row["ci_high"]]
        note = (f"\n{label} - base: the 95% CI includes 0 at k = {', '.join(map(str, unresolved))}: this run does not resolve a "
                "difference there (more held-out tasks, samples or seeds would; a multirun over seeds and leafe-report pool them)")  # fmt: skip
        out.append(format_result(result, (label, "base")) + (note if unresolved else ""))
    return "\n\n".join(out)


LEDGER_FIELDS = (
    "env_steps", "replay_steps", "model_calls", "gen_tokens", "reflections", "reflections_unparsed", "branches",
    "branches_dropped", "replay_divergences", "successes",
)  # fmt: skip


def explore_summary(trees: str | Path) -> dict[str, Any]:
    """Totals of the per-task ledgers, and how good the reflections were.

    Where the environment labels fatal steps (Sokoban), a reflection "undoes the fatal
    step" when its rollback step tau is at or before the first action after which the
    task became unsolvable; only reflections on histories that contain such a step count.
    """
    records = list(read_jsonl(trees))
    totals = {f: sum(r["ledger"].get(f, 0) for r in records) for f in LEDGER_FIELDS}
    reflections = [x for r in records for x in r["reflections"]]
    graded = [x for x in reflections if x["tau"] is not None and x.get("fatal_step") is not None]
    return {
        "tasks": len(records),
        "tasks_solved": sum(any(n["success"] for n in r["nodes"]) for r in records),
        "totals": totals,
        "unparsed_reflection_share": totals["reflections_unparsed"] / totals["reflections"] if reflections else None,
        "reflections_graded": len(graded),
        "undoes_fatal_step_share": sum(x["tau"] <= x["fatal_step"] for x in graded) / len(graded) if graded else None,
    }


def ledger_table(exploration: dict[str, Any], distillation: dict[str, Any]) -> str:
    def pct(x: float | None) -> str:
        return "n/a" if x is None else f"{100 * x:.1f}%"

    t = exploration["totals"]
    rows = [
        ("train tasks explored / solved", f"{exploration['tasks']} / {exploration['tasks_solved']}"),
        ("env steps + replay steps", f"{t['env_steps']} + {t['replay_steps']}"),
        ("model calls / generated tokens", f"{t['model_calls']} / {t['gen_tokens']}"),
        ("reflections (unparsed)", f"{t['reflections']} ({pct(exploration['unparsed_reflection_share'])})"),
        ("reflections rolling back at or before the fatal step", f"{pct(exploration['undoes_fatal_step_share'])} of {exploration['reflections_graded']}"),
        ("branches started / dropped / diverged on replay", f"{t['branches']} / {t['branches_dropped']} / {t['replay_divergences']}"),
        ("successful rollouts", str(t["successes"])),
        ("D_cf / D_reh examples", f"{distillation['cf']} / {distillation['reh']}"),
    ]
    return "\n".join(["| ledger | value |", "|---|---|", *[f"| {k} | {v} |" for k, v in rows]])


# --------------------------------------------------------------------------- #
# leafe-report: collecting the cells of one or more sweeps
# --------------------------------------------------------------------------- #

TABLE1_ENVS = ("webshop", "alfworld", "scienceworld", "sokoban")  # the paper's Table 1, in its column order
ROWS = {  # row key -> name, in the order the tables list them
    "base": "Base",
    "imitation": "Imitation",
    "early_experience_iwm": "Early Experience (IWM)",
    "early_experience_sr": "Early Experience (SR)",
    "ace": "ACE",
    "grpo": "GRPO",
    "leafe_rehearsal_only": "LEAFE (rehearsal only)",
    "leafe": "LEAFE",
    "leafe_oracle_reflection": "LEAFE (oracle reflection)",
    "leafe_rl": "LEAFE + RL",
}
ENV_NAMES = {
    "webshop": "WebShop", "alfworld": "ALFWorld", "scienceworld": "ScienceWorld", "sokoban": "Sokoban",
    "codecontests": "CodeContests", "mbpp": "MBPP", "humaneval": "HumanEval",
}  # fmt: skip
STRATEGIES = {"independent": "Independent sampling", "refinement": "Iterative refinement", "tree": "LEAFE stage-1 tree"}
BUDGET_FIELDS = ("tasks", "env_steps", "replay_steps", "model_calls", "gen_tokens", "expert_steps")


class ReportError(ValueError):
    """The folders cannot be reported as given; the message says why and what to do."""


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


def cell_row(config: dict[str, Any]) -> str:
    """The row a cell trains (where it did not run, the row that says so)."""
    m = config.get("method", {})
    name = m.get("name", "?")
    if name == "early_experience":
        return f"early_experience_{m.get('variant', 'iwm')}"
    return row_key(name, config) or name


def row_name(row: str) -> str:
    return ROWS.get(row, row)


def env_name(env: str) -> str:
    return ENV_NAMES.get(env, env)


@dataclass
class Entry:
    """One evaluated model of one cell on one environment, or a cell that did not run."""

    env: str  # evaluated on
    trained_on: str  # the cell's environment (differs for eval_also)
    model: str
    row: str
    seed: int
    source: Path  # the cell's results.json
    own: bool  # the cell trained this row (not a base model it also evaluated)
    samples: Samples | None = None
    ledger: dict[str, Any] | None = None
    absent: str | None = None  # "not run: <reason>" (Unavailable here) or "failed: <reason>"


@dataclass
class Collected:
    entries: list[Entry] = field(default_factory=list)
    searches: list[dict[str, Any]] = field(default_factory=list)  # method=search_compare cells
    cells: int = 0
    notes: list[str] = field(default_factory=list)


def collect(folders: list[Path]) -> Collected:
    out = Collected()
    files = sorted({p.resolve() for folder in folders for p in _results_files(folder)})
    if not files:
        raise ReportError(f"no results.json under {', '.join(map(str, folders))}: give the folders of `leafe` runs or sweeps")
    for path in files:
        results = json.loads(path.read_text())
        config = results.get("config", {})
        cell = {"trained_on": results["env"], "model": str(results["model"]), "seed": int(results["seed"]), "source": path}
        out.cells += 1
        if "not_run" in results or "failed" in results:
            absent = f"not run: {results['not_run']}" if "not_run" in results else f"failed: {results['failed']}"
            out.entries.append(Entry(env=results["env"], row=cell_row(config), own=True, absent=absent, **cell))
            continue
        if "search" in results:
            out.searches.append({**results["search"], "folder": path.parent})
        own = cell_row(config)
        for label, summary in results.get("runs", {}).items():
            row = row_key(label, config)
            if row is None:
                continue
            is_own = row == own  # a base model evaluated by a cell that trains another is not its own
            ledger = _ledger(results, own) if is_own else None
            for env, s in [(results["env"], summary), *summary.get("also", {}).items()]:
                samples = _samples(s, path)
                out.entries.append(Entry(env=env, row=row, own=is_own, samples=samples, ledger=ledger, **cell))
    out.entries = _dedupe(out.entries, out.notes)
    return out


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
                notes.append(f"{row_name(e.row)} on {e.env} (model {e.model}, seed {e.seed}) is in {old.source} and "
                             f"{e.source}: the report uses the first")  # fmt: skip
    return list(kept.values())


# --------------------------------------------------------------------------- #
# Statistics
# --------------------------------------------------------------------------- #


@dataclass
class Estimate:
    """Pass@k for k = ks of one row (means over problems and seeds) with its CI."""

    ks: list[int]
    mean: np.ndarray
    low: np.ndarray
    high: np.ndarray
    seeds: list[int]
    problems: int
    n: int  # samples per problem (the smallest)
    per_seed: np.ndarray  # (seeds x ks) means


def _matrix(by_seed: dict[int, Samples], ks: list[int], problems: list[str]) -> np.ndarray:
    """(seeds x problems x ks) unbiased Pass@k per problem, seeds in increasing order (as `Estimate.seeds`
    lists them; cells are found in folder order, where "10_grpo" comes before "9_grpo")."""
    return np.stack([
        pass_at_k([len(s.correct[p]) for p in problems], [sum(s.correct[p]) for p in problems], ks)
        for _, s in sorted(by_seed.items())
    ])  # fmt: skip


def estimate(by_seed: dict[int, Samples], resamples: int, seed: int, level: float) -> Estimate:
    problems = sorted(set.intersection(*(set(s.correct) for s in by_seed.values())))
    if not problems:
        raise ReportError("the seeds of one row share no problem: they were evaluated on different tasks")
    n = min(len(s.correct[p]) for s in by_seed.values() for p in problems)
    ks = list(range(1, n + 1))
    values = _matrix(by_seed, ks, problems)
    low, high = interval(bootstrap_means(values, resamples, seed), level)
    return Estimate(ks, values.mean(axis=(0, 1)), low, high, sorted(by_seed), len(problems), n, values.mean(axis=1))


def paired(a: dict[int, Samples], b: dict[int, Samples], resamples: int, seed: int, level: float) -> dict[str, Any] | None:
    """A - B at k = 1 and the largest k both have, on the seeds and problems they share: the mean
    difference, its CI over problems (seed-averaged differences), and with several seeds its CI
    over seeds and problems."""
    seeds = sorted(set(a) & set(b))
    if not seeds:
        return None
    sa, sb = {s: a[s] for s in seeds}, {s: b[s] for s in seeds}
    problems = sorted(set.intersection(*(set(x.correct) for x in [*sa.values(), *sb.values()])))
    if not problems:
        return None
    n = min(len(x.correct[p]) for x in [*sa.values(), *sb.values()] for p in problems)
    ks = sorted({1, n})
    diff = _matrix(sa, ks, problems) - _matrix(sb, ks, problems)
    lo, hi = interval(bootstrap_means(diff.mean(axis=0), resamples, seed), level)
    out = {"ks": ks, "seeds": seeds, "problems": len(problems), "diff": diff.mean(axis=(0, 1)).tolist(),
           "ci_problems": [lo.tolist(), hi.tolist()]}  # fmt: skip
    if len(seeds) > 1:
        lo, hi = interval(bootstrap_means(diff, resamples, seed), level)
        out["ci_seeds_problems"] = [lo.tolist(), hi.tolist()]
        out["per_seed"] = diff.mean(axis=1).tolist()
    return out


def solved_within(attempts: list[list[bool]], ks: list[int]) -> np.ndarray:
    """(tasks x ks): 1 where one of a task's first k attempts solved it."""
    return np.array([[float(any(a[:k])) for k in ks] for a in attempts])


# --------------------------------------------------------------------------- #
# Tables
# --------------------------------------------------------------------------- #


@dataclass
class Table:
    title: str
    header: list[str]
    rows: list[list[str]]
    notes: list[str] = field(default_factory=list)


def _pct(x: float) -> str:
    return f"{100 * x:.1f}"


def _cell(est: Estimate, k: int) -> str:
    j = est.ks.index(k)
    return f"{_pct(est.mean[j])} [{_pct(est.low[j])}, {_pct(est.high[j])}]"


def _diff(x: float, lo: float, hi: float) -> str:
    return f"{100 * x:+.1f} [{100 * lo:+.1f}, {100 * hi:+.1f}]"


def _short(reason: str) -> str:
    first = reason.split(". ")[0].split("\n")[0]
    return first if len(first) <= 90 else first[:87] + "..."


def _order(rows: set[str]) -> list[str]:
    return [r for r in ROWS if r in rows] + sorted(rows - set(ROWS))


@dataclass
class Report:
    tables: list[Table] = field(default_factory=list)
    data: dict[str, Any] = field(default_factory=dict)  # report.json
    curves: list[tuple[str, str, dict[str, Estimate]]] = field(default_factory=list)  # (file stem, title, rows)


def build(c: Collected, reference: str = "grpo", resamples: int = 10_000, seed: int = 0, level: float = 0.95) -> Report:
    rep = Report()
    groups: dict[tuple[str, str, str], dict[str, list[Entry]]] = {}
    for e in c.entries:
        groups.setdefault((e.trained_on, e.env, e.model), {}).setdefault(e.row, []).append(e)
    estimates: dict[tuple[str, str, str], dict[str, Estimate]] = {}
    absent: dict[tuple[str, str, str], dict[str, str]] = {}
    samples: dict[tuple[str, str, str], dict[str, dict[int, Samples]]] = {}
    for key, rows in groups.items():
        for row, entries in rows.items():
            ran = {e.seed: e.samples for e in entries if e.samples is not None}
            if ran:
                samples.setdefault(key, {})[row] = ran
                estimates.setdefault(key, {})[row] = estimate(ran, resamples, seed, level)
            else:
                absent.setdefault(key, {})[row] = entries[0].absent
    rep.data["pass_at_k"] = [
        {"trained_on": t, "env": env, "model": model, "row": row, "ks": est.ks, "mean": est.mean.tolist(),
         "low": est.low.tolist(), "high": est.high.tolist(), "seeds": est.seeds, "problems": est.problems,
         "per_seed": est.per_seed.tolist()}
        for (t, env, model), rows in sorted(estimates.items()) for row, est in rows.items()
    ]  # fmt: skip
    rep.data["absent"] = [
        {"trained_on": t, "env": env, "model": model, "row": row, "reason": reason}
        for (t, env, model), rows in sorted(absent.items()) for row, reason in rows.items()
    ]  # fmt: skip
    in_domain = sorted({k for k in groups if k[0] == k[1]}, key=lambda k: (k[2], k[0]))
    for title, envs in (
        ("Table 1: agentic environments", lambda env: env in TABLE1_ENVS),
        ("Table 2: coding", lambda env: env not in TABLE1_ENVS),
    ):
        keys = [k for k in in_domain if envs(k[0])]
        rep.tables += _method_tables(title, keys, estimates, absent, in_table1="Table 1" in title)
    ood = sorted((k for k in groups if k[0] != k[1]), key=lambda k: (k[2], k[0], k[1]))
    if ood:
        rep.tables += _method_tables("Table 5: out of distribution (evaluated on an environment it was not trained on)",
                                     ood, estimates, absent, ood=True)  # fmt: skip
    rep.tables += _ablation_table(samples, estimates, resamples, seed, level)
    rep.tables += _search_tables(c.searches, resamples, seed, level)
    rep.tables += _paired_tables(samples, reference, resamples, seed, level, rep.data)
    rep.tables += _budget_tables(c.entries)
    rep.tables += _paper_tables(estimates)
    for key, rows in sorted(estimates.items()):
        t, env, model = key
        trained = "" if t == env else f", trained on {env_name(t)}"
        stem = re.sub(r"[^A-Za-z0-9._-]+", "_", f"{env}{'' if t == env else '_from_' + t}_{Path(model).name}")
        rep.curves.append((stem, f"{env_name(env)} (model {model}{trained})", {r: rows[r] for r in _order(set(rows))}))
    return rep


def _method_tables(title, keys, estimates, absent, in_table1=False, ood=False) -> list[Table]:
    """One table per model: rows = methods, columns = Pass@1 and Pass@n per environment."""
    out = []
    for model in sorted({k[2] for k in keys}):
        cols = [k for k in keys if k[2] == model]
        if in_table1:
            cols.sort(key=lambda k: TABLE1_ENVS.index(k[1]))
        header, notes = ["method"], []
        for t, env, _ in cols:
            n = min((e.n for e in estimates.get((t, env, model), {}).values()), default=None)
            name = f"{env_name(env)} (trained on {env_name(t)})" if ood else env_name(env)
            header += [f"{name} Pass@1", f"{name} Pass@{n if n else 'n'}"]
        rows = []
        for row in _order({r for k in cols for r in [*estimates.get(k, {}), *absent.get(k, {})]}):
            line = [row_name(row)]
            for k in cols:
                est = estimates.get(k, {}).get(row)
                n = min((e.n for e in estimates.get(k, {}).values()), default=1)
                if est is not None:
                    line += [_cell(est, 1), _cell(est, n) if n in est.ks else f"n = {est.n} < {n}"]
                elif row in absent.get(k, {}):
                    reason = absent[k][row]
                    notes.append(f"{row_name(row)} on {env_name(k[1])}: {reason}")
                    line += [_short(reason), reason.split(":")[0]]
                else:
                    line += ["-", "-"]
            rows.append(line)
        seeds = sorted({s for k in cols for e in estimates.get(k, {}).values() for s in e.seeds})
        problems = sorted({e.problems for k in cols for e in estimates.get(k, {}).values()})
        caption = (f"model {model}; Pass@k in %, mean over {'/'.join(map(str, problems)) or 0} held-out problems"
                   + (f" and seeds {', '.join(map(str, seeds))}" if len(seeds) > 1 else f" (seed {seeds[0]})" if seeds else "")
                   + "; [95% bootstrap CI over problems" + (" and seeds" if len(seeds) > 1 else "") + "]")  # fmt: skip
        out.append(Table(f"{title} — {model}", header, rows, [caption, *notes]))
    return out


def _ablation_table(samples, estimates, resamples, seed, level) -> list[Table]:
    rows = []
    for key in sorted(samples):
        s = samples[key]
        if key[0] != key[1] or "leafe" not in s or "leafe_rehearsal_only" not in s:
            continue
        full, reh = estimates[key]["leafe"], estimates[key]["leafe_rehearsal_only"]
        d = paired(s["leafe"], s["leafe_rehearsal_only"], resamples, seed, level)
        n = d["ks"][-1]
        cis = d["ci_problems"]
        rows.append([env_name(key[1]), key[2], _cell(reh, 1), _cell(full, 1), _diff(d["diff"][0], cis[0][0], cis[1][0]),
                     _cell(reh, n), _cell(full, n), _diff(d["diff"][-1], cis[0][-1], cis[1][-1]) + f" (k={n})"])  # fmt: skip
    if not rows:
        return []
    header = ["env", "model", "rehearsal only Pass@1", "LEAFE Pass@1", "LEAFE - rehearsal Pass@1",
              "rehearsal only Pass@n", "LEAFE Pass@n", "LEAFE - rehearsal Pass@n"]  # fmt: skip
    note = "the paper's Table 4 ablation: D_reh alone vs D_cf + D_reh; differences paired over problems, 95% bootstrap CI"
    return [Table("Table 4: rehearsal only vs full LEAFE", header, rows, [note])]


def _search_tables(searches: list[dict[str, Any]], resamples, seed, level) -> list[Table]:
    """Table 3 per search cell: a task counts as solved within k attempts when one of its
    first k attempts (rollouts; the tree's nodes in the order they started) solved it."""
    out = []
    for s in searches:
        attempts = {}
        for strategy, name in s["files"].items():
            records = {json.dumps(r["task"], sort_keys=True): r for r in read_jsonl(s["folder"] / name)}
            attempts[strategy] = records
        common = sorted(set.intersection(*(set(r) for r in attempts.values())))
        if not common:
            continue
        most = max(len(attempts[st][t]["attempts"]) for st in attempts for t in common)
        ks = sorted({1, 2, 4, 8, 16, 32, 64, 128} & set(range(1, most + 1)) | {most})
        header = ["strategy", *[f"solved in {k}" for k in ks], "attempts / task", "env + replay steps / task", "model calls / task"]
        values, rows = {}, []
        for strategy in [st for st in STRATEGIES if st in attempts]:
            recs = [attempts[strategy][t] for t in common]
            v = solved_within([[a["success"] for a in r["attempts"]] for r in recs], ks)
            values[strategy] = v
            lo, hi = interval(bootstrap_means(v, resamples, seed), level)
            steps = np.mean([sum(a["steps"] + a.get("replay_steps", 0) for a in r["attempts"]) for r in recs])
            rows.append([STRATEGIES[strategy], *[f"{_pct(v[:, j].mean())} [{_pct(lo[j])}, {_pct(hi[j])}]" for j in range(len(ks))],
                         f"{np.mean([len(r['attempts']) for r in recs]):.1f}", f"{steps:.1f}",
                         f"{np.mean([r['model_calls'] for r in recs]):.1f}"])  # fmt: skip
        notes = [f"model {s['model']}, {env_name(s['env'])}, seed {s['seed']}: {len(common)} train tasks, budget "
                 f"{s['budget']} environment steps per task (replays included); % of tasks solved within the first k "
                 "attempts, 95% bootstrap CI over tasks"]  # fmt: skip
        if "tree" in values:
            for other in [st for st in values if st != "tree"]:
                d = values["tree"] - values[other]
                lo, hi = interval(bootstrap_means(d, resamples, seed), level)
                notes.append(f"tree - {other}, solved within {ks[-1]}: {_diff(d[:, -1].mean(), lo[-1], hi[-1])} (paired over tasks)")
        out.append(Table(f"Table 3: stage 1 as a search — {s['model']}, {env_name(s['env'])}", header, rows, notes))
    return out


def _paired_tables(samples, reference, resamples, seed, level, data) -> list[Table]:
    out, records = [], []
    for key in sorted(samples):
        rows = samples[key]
        if reference not in rows:
            continue
        lines = []
        for row in _order(set(rows) - {reference}):
            d = paired(rows[row], rows[reference], resamples, seed, level)
            if d is None:
                continue
            records.append({"trained_on": key[0], "env": key[1], "model": key[2], "row": row, "reference": reference, **d})
            cp, line = d["ci_problems"], [row_name(row)]
            for j, k in enumerate(d["ks"]):
                line.append(_diff(d["diff"][j], cp[0][j], cp[1][j]))
                if "ci_seeds_problems" in d:
                    cs = d["ci_seeds_problems"]
                    line.append(f"[{100 * cs[0][j]:+.1f}, {100 * cs[1][j]:+.1f}]")
            line.append(f"{d['problems']} x {len(d['seeds'])}")
            lines.append(line)
        if not lines:
            continue
        several = any(len(r["seeds"]) > 1 for r in records if (r["trained_on"], r["env"], r["model"]) == key)
        ks = next(r["ks"] for r in records if (r["trained_on"], r["env"], r["model"]) == key)
        header = ["method"]
        for k in ks:
            header += [f"Δ Pass@{k} [CI problems]"] + ([f"Δ Pass@{k} CI seeds x problems"] if several else [])
        header.append("problems x seeds")
        if any(len(x) != len(header) for x in lines):  # rows with one seed in a table with several
            lines = [x + [""] * (len(header) - len(x)) for x in lines]
        title = f"Paired difference vs {row_name(reference)} — {env_name(key[1])}, model {key[2]}"
        if key[0] != key[1]:
            title += f", trained on {env_name(key[0])}"
        out.append(Table(title, header, lines, ["method minus reference, points of Pass@k; paired over problems (and seeds), 95% bootstrap CI"]))
    data["paired"] = records
    return out


def _budget_tables(entries: list[Entry]) -> list[Table]:
    by: dict[tuple[str, str], dict[str, list[dict[str, Any]]]] = {}
    for e in entries:
        if e.ledger and e.own and e.env == e.trained_on:
            by.setdefault((e.trained_on, e.model), {}).setdefault(e.row, []).append(e.ledger)
    out = []
    for (env, model), rows in sorted(by.items()):
        lines = []
        for row in _order(set(rows)):
            ledgers = rows[row]
            line = [row_name(row)]
            for f in BUDGET_FIELDS:
                vals = [ledger.get(f, "-") for ledger in ledgers]  # "-": the method has no such cost
                line.append("-" if "-" in vals else "n/a" if None in vals else f"{np.mean(vals):.0f}")
            lines.append(line)
        note = "from the ledgers, mean over seeds; env steps are the method's own actions, replay steps those re-executed to reach a state"
        out.append(Table(f"Budgets — {env_name(env)}, model {model}", ["method", *BUDGET_FIELDS], lines, [note]))
    return out


def _norm(name: str) -> str:
    return re.sub(r"[^a-z0-9]", "", name.lower())


def paper_model(model: str, models: list[str]) -> str | None:
    """The paper's model our model id names (Qwen/Qwen2.5-7B-Instruct -> Qwen2.5-7B), if any."""
    ours = _norm(Path(model).name if "/" not in model else model.split("/")[-1])
    hits = [m for m in models if re.match(re.escape(_norm(m)) + r"(?![0-9])", ours)]
    return max(hits, key=len) if hits else None


def _paper_tables(estimates) -> list[Table]:
    paper = json.loads((Path(__file__).parent / "paper_numbers.json").read_text())
    lines = []
    for table in ("table1", "table2", "table4"):
        for env, models in paper[table].items():
            for (t, e, model), rows in sorted(estimates.items()):
                match = paper_model(model, list(models))
                if t != e or e != env or match is None:
                    continue
                for method, (p1, p128) in models[match].items():
                    row = "leafe_rehearsal_only" if method == "rehearsal_only" else method
                    est = rows.get(row)
                    ours1 = _cell(est, 1) if est else "-"
                    ours128 = _cell(est, 128) if est and 128 in est.ks else (f"n = {est.n}" if est else "-")
                    lines.append([table.replace("table", "Table "), env_name(env), model, row_name(row), f"{p1:.2f}", ours1, f"{p128:.2f}", ours128])
    if not lines:
        return []
    header = ["paper table", "env", "model", "method", "paper Pass@1", "ours Pass@1", "paper Pass@128", "ours Pass@128"]
    return [Table("The paper's numbers beside ours", header, lines, [f"paper: {paper['source']}; verified against the PDF: {paper['verified']}. {paper['note']}"])]


# --------------------------------------------------------------------------- #
# Rendering
# --------------------------------------------------------------------------- #


def table_markdown(t: Table) -> str:
    lines = ["| " + " | ".join(t.header) + " |", "|" + "---|" * len(t.header)]
    lines += ["| " + " | ".join(c.replace("|", "/") for c in r) + " |" for r in t.rows]
    return "\n".join(lines + (["", *[f"- {n}" for n in t.notes]] if t.notes else []))


def search_table(folder: Path, search: dict[str, Any], resamples: int = 10_000) -> str:
    """What method=search_compare prints: its Table 3."""
    return "\n\n".join(table_markdown(t) for t in _search_tables([{**search, "folder": folder}], resamples, 0, 0.95))


def to_markdown(rep: Report, preamble: list[str]) -> str:
    parts = ["# leafe-report", "", *preamble]
    for t in rep.tables:
        parts += ["", f"## {t.title}", "", table_markdown(t)]
    if rep.curves:
        parts += ["", "## Pass@k curves", "", *[f"![{title}](curves/{stem}.png)" for stem, title, _ in rep.curves]]
    return "\n".join(parts) + "\n"


def _tex(s: str) -> str:
    for a, b in (("\\", "\\textbackslash{}"), ("_", "\\_"), ("%", "\\%"), ("&", "\\&"), ("#", "\\#"), ("Δ", "$\\Delta$"), ("—", "---")):
        s = s.replace(a, b)
    return s


def to_latex(rep: Report, preamble: list[str]) -> str:
    parts = ["% leafe-report (booktabs): " + _tex(" ".join(preamble))]
    for t in rep.tables:
        parts += ["", "\\begin{table}[t]", "\\centering", "\\small", f"\\caption{{{_tex(t.title)}. {_tex(' '.join(t.notes[:1]))}}}",
                  "\\begin{tabular}{l" + "r" * (len(t.header) - 1) + "}", "\\toprule", " & ".join(map(_tex, t.header)) + " \\\\",
                  "\\midrule", *[" & ".join(map(_tex, r)) + " \\\\" for r in t.rows], "\\bottomrule", "\\end{tabular}",
                  *[f"% {_tex(n)}" for n in t.notes[1:]], "\\end{table}"]  # fmt: skip
    return "\n".join(parts) + "\n"


def plot_curves(rep: Report, folder: Path) -> list[Path]:
    """One PNG per (environment, model): Pass@k for k = 1..n on a log axis, one line per
    method with its CI shaded."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    folder.mkdir(parents=True, exist_ok=True)
    written = []
    for stem, title, rows in rep.curves:
        fig, ax = plt.subplots(figsize=(6, 4), dpi=120)
        for row, est in rows.items():
            ks = np.array(est.ks)
            (line,) = ax.plot(ks, 100 * est.mean, marker="o" if len(ks) < 12 else None, ms=3, label=row_name(row))
            ax.fill_between(ks, 100 * est.low, 100 * est.high, color=line.get_color(), alpha=0.15, linewidth=0)
        ax.set_xscale("log", base=2)
        ax.set_xlabel("k (samples per problem)")
        ax.set_ylabel("Pass@k (%)")
        ax.set_title(title, fontsize=10)
        ax.grid(True, which="both", alpha=0.3)
        ax.legend(fontsize=8)
        fig.tight_layout()
        path = folder / f"{stem}.png"
        fig.savefig(path)
        plt.close(fig)
        written.append(path)
    return written


def sharpening(rep: Report) -> list[str]:
    """Rows whose Pass@1 is above Base's while their Pass@n is below it (point estimates): the
    pattern of distribution sharpening the curves show."""
    lines = []
    for stem, title, rows in rep.curves:
        base = rows.get("base")
        for row, est in rows.items():
            if base is None or row == "base" or est.n != base.n:
                continue
            if est.mean[0] > base.mean[0] and est.mean[-1] < base.mean[-1]:
                lines.append(f"{title}: {row_name(row)} has Pass@1 {_pct(est.mean[0])} > Base {_pct(base.mean[0])} "
                             f"but Pass@{est.n} {_pct(est.mean[-1])} < Base {_pct(base.mean[-1])}")  # fmt: skip
    return lines


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(
        prog="leafe-report",
        description="Tables in the paper's shapes (Markdown, LaTeX), paired comparisons, budgets and Pass@k curves "
        "from the results.json and lm-eval sample logs of `leafe` runs and sweeps.",
    )
    parser.add_argument("folders", nargs="+", type=Path, help="run or sweep folders (searched for results.json)")
    parser.add_argument("--out", type=Path, help="where to write report.md/.tex/.json and curves/ (default: <first folder>/report)")
    parser.add_argument("--reference", default="grpo", help="the method the paired differences are against (default grpo)")
    parser.add_argument("--resamples", type=int, default=10_000, help="bootstrap resamples (default 10000)")
    parser.add_argument("--seed", type=int, default=0, help="bootstrap seed (default 0)")
    parser.add_argument("--confidence", type=float, default=0.95, help="confidence level (default 0.95)")
    parser.add_argument("--no-plots", action="store_true", help="skip the PNG curves")
    args = parser.parse_args(argv)
    out = args.out or args.folders[0] / "report"
    try:
        collected = collect(args.folders)
        rep = build(collected, args.reference, args.resamples, args.seed, args.confidence)
    except (ReportError, CompareError, ValueError, OSError) as err:
        raise SystemExit(f"leafe-report: error: {err}") from None
    n_not = len({e.source for e in collected.entries if e.absent})
    preamble = [
        f"From {collected.cells} cells in {', '.join(map(str, args.folders))} ({n_not} not run or failed). Every number is recomputed "
        f"from lm-eval's per-sample logs: unbiased Pass@k, mean over problems (and seeds); CIs are {100 * args.confidence:g}% "
        f"percentile bootstrap intervals ({args.resamples} resamples, seed {args.seed}).",
        "",
        f"Command: `leafe-report {' '.join(sys.argv[1:] if argv is None else argv)}`",
    ]
    preamble += [f"\nNote: {n}" for n in collected.notes] + [f"\nSharpening: {s}" for s in sharpening(rep)]
    out.mkdir(parents=True, exist_ok=True)
    markdown = to_markdown(rep, preamble)
    (out / "report.md").write_text(markdown)
    (out / "report.tex").write_text(to_latex(rep, preamble))
    write_json(out / "report.json", {"command": preamble[2], **rep.data})
    pngs = [] if args.no_plots else plot_curves(rep, out / "curves")
    print(markdown)
    print(f"leafe-report: wrote {out / 'report.md'}, report.tex, report.json and {len(pngs)} curves in {out / 'curves'}")


if __name__ == "__main__":
    main()
