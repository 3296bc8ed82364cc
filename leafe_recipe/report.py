"""Result summaries and tables: what a run prints and writes as results.json."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np

from leafe_recipe.passk import ks_up_to, mean_pass_at_k
from leafe_recipe.records import read_jsonl


def summarize(trajectories: str | Path) -> dict[str, Any]:
    """Pass@k and episode statistics over a trajectories file (one record per task)."""
    records = list(read_jsonl(trajectories))
    if not records:
        raise ValueError(f"{trajectories}: no complete task records to summarize")
    n = np.array([r["n"] for r in records])
    c = np.array([r["c"] for r in records])
    samples = [s for r in records for s in r["samples"]]
    steps = sum(s["env_steps"] for s in samples)
    return {
        "n_tasks": len(records),
        "n_samples": int(n.min()),
        "pass_at_k": {str(k): v for k, v in mean_pass_at_k(n, c, ks_up_to(int(n.min()))).items()},
        "success_rate": float(c.sum() / n.sum()),
        "mean_turns": steps / len(samples),
        "invalid_action_rate": sum(s["invalid_actions"] for s in samples) / max(steps, 1),
        "mean_gen_tokens": sum(s["gen_tokens"] for s in samples) / len(samples),
    }


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


LEDGER_FIELDS = ("env_steps", "replay_steps", "model_calls", "gen_tokens", "reflections", "reflections_unparsed", "branches", "branches_dropped", "successes")


def explore_summary(trees: str | Path) -> dict[str, Any]:
    """Totals of the per-task ledgers, and how good the reflections were.

    Where the environment labels fatal steps (Sokoban), a reflection "undoes the fatal
    step" when its rollback step tau is at or before the first action after which the
    task became unsolvable; only reflections on histories that contain such a step count.
    """
    records = list(read_jsonl(trees))
    totals = {f: sum(r["ledger"][f] for r in records) for f in LEDGER_FIELDS}
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
        ("branches started / dropped", f"{t['branches']} / {t['branches_dropped']}"),
        ("successful rollouts", str(t["successes"])),
        ("D_cf / D_reh examples", f"{distillation['cf']} / {distillation['reh']}"),
    ]
    return "\n".join(["| ledger | value |", "|---|---|", *[f"| {k} | {v} |" for k, v in rows]])
