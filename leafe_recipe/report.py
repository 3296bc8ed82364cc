"""Result summaries and tables: what a run prints and writes as results.json."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from leafe_recipe.records import read_jsonl


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
