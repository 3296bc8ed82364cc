"""method=leafe: stage 1 (explore), stage 2 (distill, then OpenRLHF SFT), and the evaluation
of the initial and the trained model. The entry point is `run(ctx)`.

Every stage's output is keyed by what produced it (`records.claim`): a rerun in the same
folder goes on where it stopped (finished trees, a finished checkpoint and finished
evaluations are reused, and no model is loaded for a stage whose output is on disk), and
stops with a message naming the changed settings when they differ. Raising `env.n_train`
explores more tasks and keeps the trees already grown; the SFT settings can be changed
without exploring again.

`method.ablation=rehearsal_only` trains on D_reh alone (the paper's Table 4 ablation);
without it a run whose D_cf is empty stops instead of silently becoming that ablation.
"""

from __future__ import annotations

import gc
import time
from pathlib import Path
from typing import Any

from leafe_recipe import shard
from leafe_recipe.context import PolicyLoader, RunContext, plain
from leafe_recipe.distill import DistillConfig, DistillStats, distill
from leafe_recipe.evaluate import evaluate
from leafe_recipe.explore import ExploreConfig, explore
from leafe_recipe.records import claim, read_jsonl
from leafe_recipe.report import explore_summary
from leafe_recipe.rollout import task_key
from leafe_recipe.train import NEW_FOLDER, leafe_mixture

ABLATIONS = (None, "rehearsal_only")


class LeafeError(RuntimeError):
    """LEAFE cannot go on with this run's data; the message gives the counts and what to change."""


def run(ctx: RunContext, label: str = "base") -> dict[str, Any]:
    """LEAFE from the context's starting model; `label` names that model's evaluation."""
    m = ctx.cfg.method
    if m.ablation not in ABLATIONS:
        raise LeafeError(f"method.ablation={m.ablation!r}: use one of {', '.join(map(str, ABLATIONS))}")
    load = ctx.loader()
    trees = ctx.run_dir / "trees.jsonl"
    tasks = grow_trees(ctx, load, trees)
    if ctx.cfg.shard is not None:  # one machine's part of stage 1: leafe-merge joins the shards (leafe_recipe/shard.py)
        exploration = explore_summary(trees)
        print(f"[explore] shard {ctx.cfg.shard} done: {trees}. Merge the shards with `leafe-merge trees OUT SHARD_RUN...`, "
              f"then run `leafe method=leafe hydra.run.dir=OUT` with these settings and no shard", flush=True)  # fmt: skip
        return {"runs": {}, "shard": ctx.cfg.shard, "ledger": {"tasks": exploration["tasks"], **exploration["totals"]}}
    runs = {label: evaluate(ctx, ctx.init, label, load)}
    del load  # frees the generation engine's memory for the trainer
    gc.collect()

    stats = distill(trees, ctx.family.system_prompt, DistillConfig(**plain(m.distill), history_window=ctx.prompt.history_window,
                                                                    seed=ctx.seed), ctx.run_dir / "sft")  # fmt: skip
    print(
        f"[distill] D_cf {stats.cf} (of {stats.branches} branches, {stats.cf_candidates} eligible; "
        f"{stats.cf_leaks} quoting their experience, policy {stats.leak_policy}), D_reh {stats.reh} "
        f"(from {stats.reh_rollouts} of {stats.successful_rollouts} successful rollouts)",
        flush=True,
    )
    datasets, probs = _training_data(m, stats, ctx.run_dir)
    sft = ctx.sft(m.sft, ctx.init, datasets, ctx.run_dir / "checkpoint", probs)
    checkpoint, budget = ctx.train_sft(sft, "leafe", tasks)
    runs["leafe"] = evaluate(ctx, str(checkpoint), "leafe")
    exploration = explore_summary(trees)
    return {
        "runs": runs,
        "ledger": {"tasks": exploration["tasks"], **exploration["totals"], **budget},
        "exploration": exploration,
        "distillation": stats.__dict__,
        "checkpoint": str(checkpoint),
    }


def grow_trees(ctx: RunContext, load: PolicyLoader, trees: Path) -> list:
    """Stage 1 on the run's train tasks (this shard's) into `trees`, or what is already there when
    its key matches; returns the tasks explored."""
    m = ctx.cfg.method
    tasks = shard.take(ctx.tasks("train"), ctx.cfg.shard)
    settings = {k: v for k, v in plain(m.explore).items() if k not in ("max_concurrent_trees", "env_workers")}
    # not n_train: raising it explores more tasks and keeps these
    key = ctx.key("explore", reflection_sampling=plain(m.reflection_sampling), explore=settings)
    claim(trees, key, NEW_FOLDER)
    done = {task_key(r) for r in read_jsonl(trees)} if trees.exists() else set()
    if all(f"{t.env}/{t.id}" in done for t in tasks):
        print(f"[explore] {len(tasks)} trees already in {trees}", flush=True)
        return tasks
    start = time.monotonic()
    explore(
        tasks,
        ctx.family,
        ctx.env_kwargs,
        load(),
        ctx.sampling(),
        ctx.sampling(m.reflection_sampling),
        ExploreConfig(**{**plain(m.explore), "history_window": ctx.prompt.history_window}),
        trees,
    )
    s = explore_summary(trees)
    t = s["totals"]
    print(
        f"[explore] {s['tasks']} trees, {s['tasks_solved']} tasks solved; {t['env_steps']} env + {t['replay_steps']} replay "
        f"steps; {t['branches']} branches ({t['replay_divergences']} replays diverged); {t['reflections']} reflections "
        f"({t['reflections_unparsed']} unparsed); {time.monotonic() - start:.0f} s",
        flush=True,
    )
    return tasks


def _training_data(m, stats: DistillStats, run_dir: Path) -> tuple[list[str], list[float] | None]:
    """The SFT files and their mixing probabilities: D_cf and D_reh (L_cf + beta L_reh), or
    D_reh alone for the rehearsal-only ablation. No D_cf without that ablation is an error."""
    cf, reh = run_dir / "sft" / "sft_cf.jsonl", run_dir / "sft" / "sft_reh.jsonl"
    counts = (
        f"{stats.trees} trees, {stats.branches} branches, {stats.cf_candidates} eligible for D_cf "
        f"({'successful ones only' if m.distill.cf_only_successful else 'all'}), D_cf {stats.cf}, D_reh {stats.reh} "
        f"from {stats.successful_rollouts} successful rollouts"
    )
    if m.ablation == "rehearsal_only":
        if stats.reh == 0:
            raise LeafeError(f"rehearsal-only ablation with no rehearsal data: {counts}. Raise method.distill.reh_fraction.")
        return [str(reh)], None
    if stats.cf == 0:
        raise LeafeError(
            f"stage 1 gave no counterfactual data (D_cf), so this would not be LEAFE: {counts} "
            f"({run_dir / 'trees.jsonl'} is kept). Explore more (env.n_train, method.explore.budget, "
            "method.explore.max_branches), allow failed branches (method.distill.cf_only_successful=false), or, "
            "to train on D_reh alone on purpose, ask for the ablation: method.ablation=rehearsal_only."
        )
    return leafe_mixture(cf, reh, m.beta)
