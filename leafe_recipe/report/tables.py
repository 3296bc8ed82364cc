"""What a run prints and the tables of a report: the paper's shapes, with every number
recomputed from per-sample correctness (never from summaries).

- Pass@k per method, environment and model: the mean over problems (and seeds) of the
  unbiased estimator with a bootstrap CI (leafe_recipe/stats.py: over problems, or over seeds
  and problems, crossed).
- Table 1 (agentic environments), Table 2 (coding), Table 5 (a model evaluated on an
  environment it was not trained on: `eval_also`), Table 4 (rehearsal only vs full LEAFE),
  Table 3 (`method=search_compare`: independent sampling vs iterative refinement vs LEAFE's
  stage-1 tree on the train tasks).
- The primary comparisons the experiment declared before it ran (`primary`), at the nominal
  level; every other paired difference (against a reference method, default GRPO) with a
  Holm-adjusted p-value and a Bonferroni simultaneous interval.
- Budgets from the ledgers: environment, replay and expert steps, model calls, tokens,
  training examples and gradient steps.
- The splits audit of every cell (leafe_recipe/splits.py); a number from a cell whose evaluated
  tasks overlap what it learned from (run with allow_overlap=true) is marked †.
- The paper's numbers beside ours where the model matches (leafe_recipe/paper_numbers.json,
  transcribed and unverified: the report says so).
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from leafe_recipe.compare import Samples, load_run
from leafe_recipe.records import read_jsonl
from leafe_recipe.report.collect import BUDGET_FIELDS, TABLE1_ENVS, Collected, Entry, ReportError
from leafe_recipe.stats import UNITS, Estimate, bootstrap_means, estimate, holm, interval, paired, solved_within

ROWS = {  # row key -> name, in the order the tables list them; a row not here is listed after, by its key
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
DAGGER = " †"  # a number from a cell whose evaluated tasks overlap what it learned from


def row_name(row: str) -> str:
    return ROWS.get(row, row)


def env_name(env: str) -> str:
    return ENV_NAMES.get(env, env)


# --------------------------------------------------------------------------- #
# What a run prints
# --------------------------------------------------------------------------- #


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
# A report's tables
# --------------------------------------------------------------------------- #


@dataclass
class Table:
    title: str
    header: list[str]
    rows: list[list[str]]
    notes: list[str] = field(default_factory=list)


@dataclass
class Report:
    tables: list[Table] = field(default_factory=list)
    data: dict[str, Any] = field(default_factory=dict)  # report.json
    curves: list[tuple[str, str, dict[str, Estimate]]] = field(default_factory=list)  # (file stem, title, rows)


Key = tuple[str, str, str]  # (trained on, evaluated on, model)


@dataclass
class Grouped:
    """The entries by (trained on, evaluated on, model) and row, with each row's estimate."""

    entries: dict[Key, dict[str, list[Entry]]] = field(default_factory=dict)
    samples: dict[Key, dict[str, dict[int, Samples]]] = field(default_factory=dict)
    estimates: dict[Key, dict[str, Estimate]] = field(default_factory=dict)
    absent: dict[Key, dict[str, str]] = field(default_factory=dict)

    def overlapping(self, key: Key, row: str) -> bool:
        return any(e.overlapping for e in self.entries.get(key, {}).get(row, []))


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


def group(c: Collected, resamples: int, seed: int, level: float) -> Grouped:
    g = Grouped()
    for e in c.entries:
        g.entries.setdefault((e.trained_on, e.env, e.model), {}).setdefault(e.row, []).append(e)
    for key, rows in g.entries.items():
        for row, entries in rows.items():
            ran = {e.seed: e.samples for e in entries if e.samples is not None}
            if ran:
                g.samples.setdefault(key, {})[row] = ran
                g.estimates.setdefault(key, {})[row] = estimate(ran, resamples, seed, level)
            else:
                g.absent.setdefault(key, {})[row] = entries[0].absent
    return g


def build(c: Collected, reference: str = "grpo", resamples: int = 10_000, seed: int = 0, level: float = 0.95) -> Report:
    rep = Report()
    g = group(c, resamples, seed, level)
    rep.data["pass_at_k"] = [
        {"trained_on": t, "env": env, "model": model, "row": row, "ks": est.ks, "mean": est.mean.tolist(),
         "low": est.low.tolist(), "high": est.high.tolist(), "seeds": est.seeds, "problems": est.problems,
         "per_seed": est.per_seed.tolist(), "unit": UNITS[min(len(est.seeds), 2)], "overlapping": g.overlapping((t, env, model), row)}
        for (t, env, model), rows in sorted(g.estimates.items()) for row, est in rows.items()
    ]  # fmt: skip
    rep.data["absent"] = [
        {"trained_on": t, "env": env, "model": model, "row": row, "reason": reason}
        for (t, env, model), rows in sorted(g.absent.items()) for row, reason in rows.items()
    ]  # fmt: skip
    in_domain = sorted({k for k in g.entries if k[0] == k[1]}, key=lambda k: (k[2], k[0]))
    for title, envs in (
        ("Table 1: agentic environments", lambda env: env in TABLE1_ENVS),
        ("Table 2: coding", lambda env: env not in TABLE1_ENVS),
    ):
        keys = [k for k in in_domain if envs(k[0])]
        rep.tables += _method_tables(title, keys, g, in_table1="Table 1" in title)
    ood = sorted((k for k in g.entries if k[0] != k[1]), key=lambda k: (k[2], k[0], k[1]))
    if ood:
        rep.tables += _method_tables("Table 5: out of distribution (evaluated on an environment it was not trained on)", ood, g, ood=True)
    rep.tables += _ablation_table(g, resamples, seed, level)
    rep.tables += _search_tables(c.searches, resamples, seed, level)
    rep.tables += _comparisons(c, g, reference, resamples, seed, level, rep.data)
    rep.tables += _budget_tables(c.entries)
    rep.tables += _audit_tables(c.entries)
    rep.tables += _paper_tables(g.estimates)
    for key, rows in sorted(g.estimates.items()):
        t, env, model = key
        trained = "" if t == env else f", trained on {env_name(t)}"
        stem = re.sub(r"[^A-Za-z0-9._-]+", "_", f"{env}{'' if t == env else '_from_' + t}_{Path(model).name}")
        rep.curves.append((stem, f"{env_name(env)} (model {model}{trained})", {r: rows[r] for r in _order(set(rows))}))
    return rep


def _heldout_note(entries: list[Entry]) -> str:
    """The split sizes and overlaps of the cells behind a table, in one line."""
    audits = [e.audit for e in entries if e.audit]
    if not audits:
        return "splits audit: not recorded by these cells (made before leafe-splits existed)"
    flagged = sorted({f"{p['b']} vs {p['a']}" for a in audits for p in a["flagged"]})
    sizes = sorted({f"{e.split} {a['splits'].get(e.split, {}).get('distinct', '?')} distinct" for e, a in ((e, e.audit) for e in entries if e.audit)})
    if flagged:
        return f"splits audit: {', '.join(sizes)}; † NOT held out by content ({', '.join(flagged)}: run with allow_overlap=true)"
    return f"splits audit: {', '.join(sizes)}; no overlap with train, validation or the model's manifest (leafe-splits)"


def _method_tables(title: str, keys: list[Key], g: Grouped, in_table1: bool = False, ood: bool = False) -> list[Table]:
    """One table per model: rows = methods, columns = Pass@1 and Pass@n per environment."""
    out = []
    for model in sorted({k[2] for k in keys}):
        cols = [k for k in keys if k[2] == model]
        if in_table1:
            cols.sort(key=lambda k: TABLE1_ENVS.index(k[1]))
        header, notes = ["method"], []
        for t, env, _ in cols:
            n = min((e.n for e in g.estimates.get((t, env, model), {}).values()), default=None)
            name = f"{env_name(env)} (trained on {env_name(t)})" if ood else env_name(env)
            header += [f"{name} Pass@1", f"{name} Pass@{n if n else 'n'}"]
        rows = []
        for row in _order({r for k in cols for r in [*g.estimates.get(k, {}), *g.absent.get(k, {})]}):
            line = [row_name(row)]
            for k in cols:
                est = g.estimates.get(k, {}).get(row)
                n = min((e.n for e in g.estimates.get(k, {}).values()), default=1)
                mark = DAGGER if g.overlapping(k, row) else ""
                if est is not None:
                    line += [_cell(est, 1) + mark, (_cell(est, n) if n in est.ks else f"n = {est.n} < {n}") + mark]
                elif row in g.absent.get(k, {}):
                    reason = g.absent[k][row]
                    notes.append(f"{row_name(row)} on {env_name(k[1])}: {reason}")
                    line += [_short(reason), reason.split(":")[0]]
                else:
                    line += ["-", "-"]
            rows.append(line)
        seeds = sorted({s for k in cols for e in g.estimates.get(k, {}).values() for s in e.seeds})
        problems = sorted({e.problems for k in cols for e in g.estimates.get(k, {}).values()})
        splits = sorted({e.split for k in cols for es in g.entries.get(k, {}).values() for e in es})
        caption = (f"model {model}; Pass@k in %, mean over {'/'.join(map(str, problems)) or 0} {'/'.join(splits)} problems"
                   + (f" and seeds {', '.join(map(str, seeds))}" if len(seeds) > 1 else f" (seed {seeds[0]})" if seeds else "")
                   + f"; [95% CI: {UNITS[min(len(seeds), 2) or 1]}]")  # fmt: skip
        fewer = {row: sorted(e.seeds) for k in cols for row, e in g.estimates.get(k, {}).items() if sorted(e.seeds) != seeds}
        if fewer:
            notes.insert(0, "rows over other seeds: " + "; ".join(f"{row_name(r)} seeds {', '.join(map(str, s))}" for r, s in sorted(fewer.items())))
        entries = [e for k in cols for es in g.entries.get(k, {}).values() for e in es]
        out.append(Table(f"{title} — {model}", header, rows, [caption, _heldout_note(entries), *notes]))
    return out


def _ablation_table(g: Grouped, resamples: int, seed: int, level: float) -> list[Table]:
    rows = []
    for key in sorted(g.samples):
        s = g.samples[key]
        if key[0] != key[1] or "leafe" not in s or "leafe_rehearsal_only" not in s:
            continue
        full, reh = g.estimates[key]["leafe"], g.estimates[key]["leafe_rehearsal_only"]
        d = paired(s["leafe"], s["leafe_rehearsal_only"], resamples, seed, level)
        n = d["ks"][-1]
        cis = d["ci"]
        rows.append([env_name(key[1]), key[2], _cell(reh, 1), _cell(full, 1), _diff(d["diff"][0], cis[0][0], cis[1][0]),
                     _cell(reh, n), _cell(full, n), _diff(d["diff"][-1], cis[0][-1], cis[1][-1]) + f" (k={n})"])  # fmt: skip
    if not rows:
        return []
    header = ["env", "model", "rehearsal only Pass@1", "LEAFE Pass@1", "LEAFE - rehearsal Pass@1",
              "rehearsal only Pass@n", "LEAFE Pass@n", "LEAFE - rehearsal Pass@n"]  # fmt: skip
    note = "the paper's Table 4 ablation: D_reh alone vs D_cf + D_reh; paired differences, unadjusted 95% CI (the paired tables adjust)"
    return [Table("Table 4: rehearsal only vs full LEAFE", header, rows, [note])]


def _search_tables(searches: list[dict[str, Any]], resamples: int, seed: int, level: float) -> list[Table]:
    """Table 3 per search cell: a task counts as solved within k attempts when one of its
    first k attempts (rollouts; the tree's nodes in the order they started) solved it."""
    out = []
    for s in searches:
        attempts = s["attempts"]
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


def parse_primary(text: str) -> tuple[str, str, str]:
    """'leafe - grpo @ 1' -> ("leafe", "grpo", "1"); the k may be `max` (the largest k)."""
    match = re.fullmatch(r"\s*(\w+)\s*-\s*(\w+)\s*@\s*(\d+|max)\s*", text)
    if not match:
        raise ReportError(f"primary comparison {text!r}: write it as '<row> - <reference row> @ <k or max>', e.g. 'leafe - grpo @ 1'")
    return match[1], match[2], match[3]


def _comparisons(c: Collected, g: Grouped, reference: str, resamples: int, seed: int, level: float, data: dict[str, Any]) -> list[Table]:
    """The declared primary comparisons at the nominal level, then every row against `reference`
    (at k = 1 and the largest k) as secondary comparisons, Holm-adjusted with simultaneous intervals."""
    declared = sorted({p for e in c.entries for p in e.primary})
    primary_keys: set[tuple[Key, str, str, int]] = set()
    primary_rows, records = [], []
    for text in declared:
        a, b, k = parse_primary(text)
        for key in sorted(g.samples):
            if a not in g.samples[key] or b not in g.samples[key] or key[0] != key[1]:
                continue
            n = min(len(v) for run in (*g.samples[key][a].values(), *g.samples[key][b].values()) for v in run.correct.values())
            kk = n if k == "max" else int(k)
            d = paired(g.samples[key][a], g.samples[key][b], resamples, seed, level, [kk])
            if d is None or not d["ks"]:
                continue
            primary_keys.add((key, a, b, kk))
            records.append({"trained_on": key[0], "env": key[1], "model": key[2], "row": a, "reference": b, "k": kk, "primary": True,
                            "diff": d["diff"][0], "ci": [d["ci"][0][0], d["ci"][1][0]], "p": d["p"][0], "unit": d["unit"],
                            "seeds": d["seeds"], "problems": d["problems"], "per_seed": [x[0] for x in d["per_seed"]]})  # fmt: skip
            primary_rows.append([f"{row_name(a)} - {row_name(b)}", env_name(key[1]), key[2], str(kk), _diff(d["diff"][0], d["ci"][0][0], d["ci"][1][0]),
                                 f"{d['p'][0]:.4f}", f"{d['problems']} x {len(d['seeds'])}"])  # fmt: skip
    secondary: list[dict[str, Any]] = []
    for key in sorted(g.samples):
        rows = g.samples[key]
        if reference not in rows:
            continue
        for row in _order(set(rows) - {reference}):
            d = paired(rows[row], rows[reference], resamples, seed, level)
            if d is None:
                continue
            for j, k in enumerate(d["ks"]):
                if (key, row, reference, k) not in primary_keys:
                    secondary.append({"key": key, "row": row, "k": k, "d": d, "j": j})
    m = len(secondary)
    adjusted = holm([s["d"]["p"][s["j"]] for s in secondary])
    simultaneous = 1 - (1 - level) / max(1, m)
    tables = []
    if primary_rows:
        tables.append(Table("Primary comparisons (declared in the experiment config before the run)",
                            ["comparison", "env", "model", "k", "Δ Pass@k [95% CI]", "p", "problems x seeds"], primary_rows,
                            [f"declared: {'; '.join(declared)}; nominal 95% intervals and unadjusted p-values, as declared; "
                             f"resampling: {records[0]['unit'] if records else ''}"]))  # fmt: skip
    by_key: dict[Key, list[list[str]]] = {}
    for s, p_adj in zip(secondary, adjusted):
        d, j, key = s["d"], s["j"], s["key"]
        lo, hi = interval(d["boot"][:, [j]], simultaneous)
        records.append({"trained_on": key[0], "env": key[1], "model": key[2], "row": s["row"], "reference": reference, "k": s["k"],
                        "primary": False, "diff": d["diff"][j], "ci": [d["ci"][0][j], d["ci"][1][j]], "p": d["p"][j],
                        "p_holm": p_adj, "ci_simultaneous": [float(lo[0]), float(hi[0])], "simultaneous_level": simultaneous,
                        "unit": d["unit"], "seeds": d["seeds"], "problems": d["problems"], "per_seed": [x[j] for x in d["per_seed"]]})  # fmt: skip
        by_key.setdefault(key, []).append([row_name(s["row"]), str(s["k"]), _diff(d["diff"][j], d["ci"][0][j], d["ci"][1][j]),
                                           _diff(d["diff"][j], lo[0], hi[0]), f"{p_adj:.4f}", f"{d['problems']} x {len(d['seeds'])}"])  # fmt: skip
    for key, lines in by_key.items():
        title = f"Paired difference vs {row_name(reference)} — {env_name(key[1])}, model {key[2]}"
        if key[0] != key[1]:
            title += f", trained on {env_name(key[0])}"
        header = ["method", "k", "Δ Pass@k [unadjusted 95% CI]", f"Δ [simultaneous {100 * simultaneous:.2f}% CI]", "p (Holm)", "problems x seeds"]
        note = (f"method minus reference, points of Pass@k; secondary comparisons: {m} in this report, adjusted together (Holm p-values, "
                f"Bonferroni simultaneous intervals); resampling: {secondary[0]['d']['unit'] if secondary else ''}")  # fmt: skip
        tables.append(Table(title, header, lines, [note]))
    data["comparisons"] = records
    return tables


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
        note = ("from the ledgers, mean over seeds; env steps are the method's own actions, replay steps those re-executed to reach "
                "a state, expert steps the demonstrations it learned from; training examples per epoch and optimizer steps of its training")  # fmt: skip
        out.append(Table(f"Budgets — {env_name(env)}, model {model}", ["method", *BUDGET_FIELDS], lines, [note]))
    return out


def _audit_tables(entries: list[Entry]) -> list[Table]:
    """The splits audit of the cells (one line per distinct audit): sizes and every comparison."""
    seen: dict[str, list[str]] = {}
    for e in entries:
        if e.audit is None:
            continue
        a = e.audit
        sizes = "; ".join(f"{name} {s['tasks']} ({s['distinct']} distinct)" for name, s in a["splits"].items())
        pairs = "; ".join(f"{p['a']}/{p['b']} {p['exact']}+{p['near']}" for p in a["pairs"])
        manifest = "unknown (no manifest)" if a["manifest"] is None else f"{a['manifest']['tasks']} tasks"
        line = [env_name(e.trained_on), e.model, sizes, manifest, pairs, "yes †" if a["flagged"] else "no"]
        seen.setdefault(json.dumps(line), line)
    if not seen:
        return []
    header = ["env", "model", "splits (distinct by content)", "model learned from", "overlaps learned/held out (exact+near)", "flagged"]
    return [Table("Splits audit", header, list(seen.values()), ["leafe_recipe/splits.py: fingerprints per family, lm-eval's 13-gram janitor for text"])]


def _norm(name: str) -> str:
    return re.sub(r"[^a-z0-9]", "", name.lower())


def paper_model(model: str, models: list[str]) -> str | None:
    """The paper's model our model id names (Qwen/Qwen2.5-7B-Instruct -> Qwen2.5-7B), if any."""
    ours = _norm(Path(model).name if "/" not in model else model.split("/")[-1])
    hits = [m for m in models if re.match(re.escape(_norm(m)) + r"(?![0-9])", ours)]
    return max(hits, key=len) if hits else None


def _paper_tables(estimates: dict[Key, dict[str, Estimate]]) -> list[Table]:
    paper = json.loads((Path(__file__).parent.parent / "paper_numbers.json").read_text())
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
