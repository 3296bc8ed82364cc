"""LEAFE stage 2 data: the counterfactual set D_cf and the rehearsal set D_reh, as
OpenRLHF SFT JSON Lines ({"prompt": [messages], "response": [assistant message]}).

D_cf: for each branch, the ORIGINAL experience-free history h_tau (the prompt the
policy saw before its mistake) with the revised action a'_tau as the target. The
experience is dropped, so the recovery becomes part of the policy rather than of
the prompt. Up to `cf_per_task` per task, in breadth-first order, by default only
from branches that went on to succeed (the branch, or a deeper branch that kept
a'_tau in its prefix).

D_reh: every (h_t, a_t) step of a random `reh_fraction` of the successful rollouts,
branched ones included, also without experience. Each rollout's draw is seeded by
(seed, task, node), so the selection does not depend on file order.
"""

from __future__ import annotations

import json
import os
import random
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from leafe_recipe.prompts import build_messages
from leafe_recipe.records import read_jsonl
from leafe_recipe.rollout import task_key


@dataclass(frozen=True)
class DistillConfig:
    cf_per_task: int = 3
    cf_only_successful: bool = True
    reh_fraction: float = 0.2
    history_window: int | None = 2  # the window the policy is trained and evaluated with
    seed: int = 0


@dataclass
class DistillStats:
    trees: int = 0
    branches: int = 0
    cf_candidates: int = 0  # branches eligible for D_cf (successful ones by default)
    cf: int = 0
    successful_rollouts: int = 0
    reh_rollouts: int = 0
    reh: int = 0


def went_on_to_succeed(nodes: list[dict[str, Any]], node: dict[str, Any]) -> bool:
    """Did `node` succeed, or a deeper branch whose prefix still holds node's revised action?"""
    if node["success"]:
        return True
    return any(
        child["parent"] == node["id"] and child["tau"] > node["tau"] and went_on_to_succeed(nodes, child)
        for child in nodes
    )


def sft_record(system: str, trajectory: dict[str, Any], step: int, window: int | None, /, **meta: Any) -> dict[str, Any]:
    """The experience-free prompt before action `step` (1-based) and that action as the response."""
    prompt = build_messages(system, trajectory["observations"][:step], trajectory["actions"][: step - 1], window)
    response = [{"role": "assistant", "content": trajectory["actions"][step - 1]}]
    return {"prompt": prompt, "response": response, **meta}


def distill(trees_path: str | Path, system_prompt: str, config: DistillConfig, out_dir: str | Path) -> DistillStats:
    """Write sft_cf.jsonl, sft_reh.jsonl and distill_stats.json to `out_dir`."""
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    stats = DistillStats()
    cf: list[dict[str, Any]] = []
    reh: list[dict[str, Any]] = []
    for tree in read_jsonl(trees_path):
        stats.trees += 1
        key = task_key(tree)
        nodes = tree["nodes"]
        branches = [n for n in nodes if n["tau"] is not None]
        stats.branches += len(branches)
        eligible = [n for n in branches if not config.cf_only_successful or went_on_to_succeed(nodes, n)]
        stats.cf_candidates += len(eligible)
        for n in sorted(eligible, key=lambda n: (n["depth"], n["id"]))[: config.cf_per_task]:
            cf.append(sft_record(system_prompt, n, n["tau"], config.history_window, task=key, node=n["id"], tau=n["tau"]))
        for n in nodes:
            if not n["success"]:
                continue
            stats.successful_rollouts += 1
            if random.Random(f"{config.seed}/{key}/{n['id']}").random() >= config.reh_fraction:
                continue
            stats.reh_rollouts += 1
            for step in range(1, len(n["actions"]) + 1):
                reh.append(sft_record(system_prompt, n, step, config.history_window, task=key, node=n["id"], step=step))
    stats.cf, stats.reh = len(cf), len(reh)
    _write_jsonl(out_dir / "sft_cf.jsonl", cf)
    _write_jsonl(out_dir / "sft_reh.jsonl", reh)
    (out_dir / "distill_stats.json").write_text(json.dumps(asdict(stats), indent=2))
    return stats


def _write_jsonl(path: Path, records: list[dict[str, Any]]) -> None:
    """Whole-file replace: a killed run leaves the previous file or the new one, never half."""
    tmp = path.with_suffix(".tmp")
    with open(tmp, "w", encoding="utf-8") as f:
        for r in records:
            f.write(json.dumps(r, ensure_ascii=False) + "\n")
        f.flush()
        os.fsync(f.fileno())
    os.replace(tmp, path)
