"""method=leafe: stage 1 (explore), stage 2 (distill, then OpenRLHF SFT), and the evaluation
of the initial and the trained model. The entry point is `run(cfg, family, run_dir)`.

Every stage's output is keyed by what produced it (`records.claim`): a rerun in the same
folder goes on where it stopped (finished trees, a finished checkpoint and finished
evaluations are reused, and no model is loaded for a stage whose output is on disk), and
stops with a message naming the changed settings when they differ. Raising `env.n_train`
explores more tasks and keeps the trees already grown; the SFT settings can be changed
without exploring again.

`method.ablation=rehearsal_only` trains on D_reh alone (the paper's Table 4 ablation);
without it a run whose D_cf is empty stops instead of silently becoming that ablation.

method=leafe_rl (`run_rl`) is the paper's "LEAFE + RL": GRPO first (`method.grpo`, the
settings of method=grpo), then LEAFE from the GRPO checkpoint, with the prompts GRPO
trained it with (the whole history).
"""

from __future__ import annotations

import gc
import time
from pathlib import Path
from typing import Any

from omegaconf import DictConfig, open_dict

from leafe_recipe import shard
from leafe_recipe.distill import DistillConfig, DistillStats, distill
from leafe_recipe.envs.base import EnvFamily
from leafe_recipe.evaluate import evaluate, plain, policy_loader, sampling_from
from leafe_recipe.explore import ExploreConfig, explore
from leafe_recipe.records import claim, model_identity, read_jsonl
from leafe_recipe.report import explore_summary
from leafe_recipe.rollout import task_key
from leafe_recipe.tiny import resolve_model
from leafe_recipe.train import NEW_FOLDER, SFTConfig, leafe_mixture, train_checkpoint

ABLATIONS = (None, "rehearsal_only")


class LeafeError(RuntimeError):
    """LEAFE cannot go on with this run's data; the message gives the counts and what to change."""


def run(cfg: DictConfig, family: EnvFamily, run_dir: Path) -> dict[str, Any]:
    m = cfg.method
    if m.ablation not in ABLATIONS:
        raise LeafeError(f"method.ablation={m.ablation!r}: use one of {', '.join(map(str, ABLATIONS))}")
    init = resolve_model(m.init or cfg.model)
    load = policy_loader(cfg, init)
    trees = run_dir / "trees.jsonl"
    grow_trees(cfg, family, init, load, trees)
    if cfg.shard is not None:  # one machine's part of stage 1: leafe-merge joins the shards (leafe_recipe/shard.py)
        exploration = explore_summary(trees)
        print(f"[explore] shard {cfg.shard} done: {trees}. Merge the shards with `leafe-merge trees OUT SHARD_RUN...`, "
              f"then run `leafe method=leafe hydra.run.dir=OUT` with these settings and no shard", flush=True)  # fmt: skip
        return {"runs": {}, "shard": cfg.shard, "ledger": {"tasks": exploration["tasks"], **exploration["totals"]}}
    runs = {"base" if m.init is None else "init": evaluate(cfg, init, "base" if m.init is None else "init", run_dir, load)}
    del load  # frees the generation engine's memory for the trainer
    gc.collect()

    window = cfg.env.history_window
    distill_config = DistillConfig(**plain(m.distill), history_window=window, seed=cfg.seed)
    stats = distill(trees, family.system_prompt, distill_config, run_dir / "sft")
    print(
        f"[distill] D_cf {stats.cf} (of {stats.branches} branches, {stats.cf_candidates} eligible; "
        f"{stats.cf_leaks} quoting their experience, policy {stats.leak_policy}), D_reh {stats.reh} "
        f"(from {stats.reh_rollouts} of {stats.successful_rollouts} successful rollouts)",
        flush=True,
    )
    datasets, probs = _training_data(m, stats, run_dir)
    sft = SFTConfig(model=init, datasets=datasets, dataset_probs=probs, output_dir=str(run_dir / "checkpoint"), **plain(m.sft))
    checkpoint = train_checkpoint(sft, window, cfg.env.name)
    runs["leafe"] = evaluate(cfg, str(checkpoint), "leafe", run_dir)
    exploration = explore_summary(trees)
    return {
        "runs": runs,
        "ledger": {"tasks": exploration["tasks"], **exploration["totals"]},
        "exploration": exploration,
        "distillation": stats.__dict__,
        "checkpoint": str(checkpoint),
    }


def grow_trees(cfg: DictConfig, family: EnvFamily, init: str, load, trees: Path) -> None:
    """Stage 1 on the run's train tasks into `trees`, or what is already there when its key matches."""
    m = cfg.method
    tasks = shard.take(family.tasks("train", cfg.env.n_train, **plain(cfg.env.tasks)), cfg.shard)
    settings = {k: v for k, v in plain(m.explore).items() if k not in ("max_concurrent_trees", "env_workers")}
    key = {
        "stage": "explore",
        "init": model_identity(init),
        "env": cfg.env.name,
        "tasks": plain(cfg.env.tasks),
        "kwargs": plain(cfg.env.kwargs),
        "sampling": plain(cfg.sampling),
        "reflection_sampling": plain(m.reflection_sampling),
        "explore": settings,
        "history_window": cfg.env.history_window,
        "seed": cfg.seed,
    }  # not n_train: raising it explores more tasks and keeps these
    claim(trees, key, NEW_FOLDER)
    done = {task_key(r) for r in read_jsonl(trees)} if trees.exists() else set()
    if all(f"{t.env}/{t.id}" in done for t in tasks):
        print(f"[explore] {len(tasks)} trees already in {trees}", flush=True)
        return
    start = time.monotonic()
    explore(
        tasks,
        family,
        plain(cfg.env.kwargs),
        load(),
        sampling_from(cfg.sampling, cfg.seed),
        sampling_from(m.reflection_sampling, cfg.seed),
        ExploreConfig(**{**plain(m.explore), "history_window": cfg.env.history_window}),
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


def _training_data(m: DictConfig, stats: DistillStats, run_dir: Path) -> tuple[list[str], list[float] | None]:
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


def run_rl(cfg: DictConfig, family: EnvFamily, run_dir: Path) -> dict[str, Any]:
    """method=leafe_rl: GRPO, then LEAFE starting from its checkpoint; reports both."""
    from baselines.grpo import WINDOW, engine, train_grpo

    engine(cfg.method.grpo.engine, cfg.method.grpo.dry_run)  # it may not run here at all
    start = resolve_model(cfg.method.init or cfg.model)
    base = evaluate(cfg, start, "base", run_dir)
    checkpoint, grpo = train_grpo(cfg, cfg.method.grpo, family, start, run_dir / "grpo")
    if checkpoint is None:  # a dry run of the GPU engine
        return {"runs": {"base": base}, "grpo": grpo}
    with open_dict(cfg):
        cfg.method.init = str(checkpoint)
        cfg.env.history_window = WINDOW
    out = run(cfg, family, run_dir)
    runs = out.pop("runs")
    return {"runs": {"base": base, "grpo": runs["init"], "leafe_rl": runs["leafe"]}, "grpo": grpo, **out}
