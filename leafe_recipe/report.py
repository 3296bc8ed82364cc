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
