"""LEAFE stage 1 lock-step across tasks vs task by task, same tasks, budget and seeds.

    .venv/bin/python benchmarks/explore.py [--model tiny|micro|DIR] [--device auto] [--tasks 8 --budget 24]

Lock-step grows every tree at once (one generate call per round carries every pending
action and reflection of every tree); the baseline grows one tree at a time
(`max_concurrent_trees=1`). Sokoban, the hf backend. Prints tasks/s and the ratio.
"""

from __future__ import annotations

import argparse
import tempfile
import time
from pathlib import Path

from leafe_recipe.context import composed, plain
from leafe_recipe.envs.base import get_family
from leafe_recipe.explore import ExploreConfig, explore
from leafe_recipe.policy import Sampling
from leafe_recipe.policy.hf import HFPolicy
from leafe_recipe.records import read_jsonl
from leafe_recipe.models import resolve as resolve_model


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--tasks", type=int, default=8)
    ap.add_argument("--budget", type=int, default=24)
    ap.add_argument("--max-steps", type=int, default=6)
    ap.add_argument("--model", default="tiny", help="tiny, micro or a model directory (default tiny)")
    ap.add_argument("--device", default="auto", help="the hf backend's device (auto: cuda when available)")
    args = ap.parse_args()

    family = get_family("sokoban")
    tasks = family.tasks("train", args.tasks)  # the environment's default rooms (6x6: 5x5 holds only 8 distinct rooms)
    policy = HFPolicy(resolve_model(args.model), device=args.device)
    policy.generate([[{"role": "user", "content": "warm-up"}]], Sampling(max_new_tokens=24))  # first-call costs out of the first timed run
    action, reflection = Sampling(max_new_tokens=24), Sampling(max_new_tokens=48, temperature=0.7)
    rates = {}
    with tempfile.TemporaryDirectory() as tmp:
        for label, concurrent in [("lock-step", args.tasks), ("task by task", 1)]:
            settings = plain(composed("method=leafe", f"budget={args.budget}").method.explore)
            cfg = ExploreConfig(**{**settings, "max_branches": 4, "max_concurrent_trees": concurrent}, history_window=2)
            out = Path(tmp) / f"{concurrent}.jsonl"
            t0 = time.perf_counter()
            explore(tasks, family, {"max_steps": args.max_steps}, policy, action, reflection, cfg, out)
            seconds = time.perf_counter() - t0
            ledgers = [r["ledger"] for r in read_jsonl(out)]
            rates[label] = len(ledgers) / seconds
            steps = sum(ld["env_steps"] + ld["replay_steps"] for ld in ledgers)
            calls = sum(ld["model_calls"] for ld in ledgers)
            print(f"{label:13s} {rates[label]:6.3f} tasks/s  ({seconds:6.1f} s; {steps} env+replay steps, {calls} model calls)")
    print(f"ratio lock-step / task by task: {rates['lock-step'] / rates['task by task']:.1f}x")
    print(f"({args.tasks} Sokoban tasks, budget {args.budget} steps each, model {args.model}, hf backend, {policy.device})")


if __name__ == "__main__":
    main()
