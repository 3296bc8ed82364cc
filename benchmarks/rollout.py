"""Lock-step batched rollout vs one episode at a time, same episodes, on a given model.

    .venv/bin/python benchmarks/rollout.py [--model tiny|micro|DIR] [--device auto] [--tasks 8 --samples 4 --max-steps 6]

Both runs play the same (task, sample) episodes with the same policy and sampling;
lock-step puts every live episode in one generate call per turn, the baseline runs
`max_concurrent=1`. Prints episodes/s of each and their ratio. The tiny model generates so
cheaply that the environment and Python dominate; the micro model (`micro`, built once) and
a GPU (`--device cuda`, the default where there is one) show what a user's run costs.
"""

from __future__ import annotations

import argparse
import time

from leafe_recipe.envs.base import get_family
from leafe_recipe.policy import Sampling
from leafe_recipe.policy.hf import HFPolicy
from leafe_recipe.rollout import run_episodes
from leafe_recipe.models import resolve as resolve_model


def episodes_per_second(policy, tasks, samples, family, max_steps, sampling, max_concurrent) -> tuple[float, int]:
    starts = [(t, s) for t in tasks for s in range(samples)]
    t0 = time.perf_counter()
    episodes = list(run_episodes(starts, family, {"max_steps": max_steps}, policy, sampling, 2, max_concurrent))
    return len(episodes) / (time.perf_counter() - t0), sum(len(e.actions) for e in episodes)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--tasks", type=int, default=8)
    ap.add_argument("--samples", type=int, default=4)
    ap.add_argument("--max-steps", type=int, default=6)
    ap.add_argument("--max-new-tokens", type=int, default=32)
    ap.add_argument("--model", default="tiny", help="tiny, micro or a model directory (default tiny)")
    ap.add_argument("--device", default="auto", help="the hf backend's device (auto: cuda when available)")
    args = ap.parse_args()

    family = get_family("sokoban")
    tasks = family.tasks("test", args.tasks)
    policy = HFPolicy(resolve_model(args.model), device=args.device)
    policy.generate([[{"role": "user", "content": "warm-up"}]], Sampling(max_new_tokens=args.max_new_tokens))  # first-call costs out of the first timed run
    sampling = Sampling(max_new_tokens=args.max_new_tokens)
    n = args.tasks * args.samples
    batched, steps_b = episodes_per_second(policy, tasks, args.samples, family, args.max_steps, sampling, n)
    single, steps_s = episodes_per_second(policy, tasks, args.samples, family, args.max_steps, sampling, 1)
    print(f"{n} episodes of up to {args.max_steps} steps (sokoban, model {args.model}, hf backend, {policy.device})")
    print(f"lock-step (one generate call per turn for all {n}): {batched:8.2f} episodes/s  ({steps_b} env steps)")
    print(f"one episode at a time:                        {single:8.2f} episodes/s  ({steps_s} env steps)")
    print(f"ratio lock-step / one-at-a-time: {batched / single:.1f}x")


if __name__ == "__main__":
    main()
