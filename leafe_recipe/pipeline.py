"""The `leafe` Hydra app: one entry point for every method, environment and model.

    leafe                                         # method=base, env=sokoban, model=tiny
    leafe method=leafe experiment=smoke           # the whole LEAFE pipeline at laptop scale
    leafe model=Qwen/Qwen2.5-1.5B-Instruct n_samples=16
    leafe -m method=base,leafe model=tiny         # a sweep

method=base evaluates the model. method=leafe runs generate (stage 1 exploration on the
train tasks) -> distill (D_cf, D_reh) -> train (OpenRLHF SFT) -> evaluate (Pass@k of the
initial and the trained model on the held-out tasks) -> report. The evaluate stage is
lm-eval (`evaluate_checkpoint`: `simple_evaluate` on the env's task in tasks/, the
`leafe-agent` model), so the app's numbers and `leafe-eval`'s come from one code path.

Every artefact is written under Hydra's run folder:
  trees.jsonl                 stage 1, one exploration tree per train task
  sft/sft_cf.jsonl, sft/sft_reh.jsonl, sft/distill_stats.json
  checkpoint/                 the trained Hugging Face model (train.log inside)
  eval/<run>/                  lm-eval's results_*.json and samples_<task>_*.jsonl (every episode)
  eval_<run>.json             that evaluation's summary
  results.json                Pass@k per run, the exploration ledger, the config
Rerunning with `hydra.run.dir=<that folder>` resumes: finished trees, a finished
checkpoint and finished evaluations are not redone.
"""

from __future__ import annotations

import gc
import json
from pathlib import Path
from typing import Any

import hydra
from hydra.core.hydra_config import HydraConfig
from omegaconf import DictConfig, OmegaConf

from leafe_recipe import CONF_DIR
from leafe_recipe.distill import DistillConfig, distill
from leafe_recipe.envs.base import EnvFamily, get_family
from leafe_recipe.explore import ExploreConfig, explore
from leafe_recipe.policy import BackendConfig, Policy, Sampling, make_policy
from leafe_recipe.lm_eval_plugin import evaluate_checkpoint
from leafe_recipe.report import explore_summary, ledger_table, markdown_table
from leafe_recipe.tiny import resolve_model
from leafe_recipe.train import SFTConfig, leafe_mixture, train

DONE = ".complete"  # marks a checkpoint whose training finished


def plain(node: Any) -> Any:
    return OmegaConf.to_container(node, resolve=True)


def sampling_from(node: DictConfig, seed: int) -> Sampling:
    s = plain(node)
    return Sampling(**{**s, "stop": tuple(s["stop"]), "seed": seed})


def load_policy(cfg: DictConfig, model: str) -> Policy:
    return make_policy(model, BackendConfig(**plain(cfg.backend)))


def evaluate(cfg: DictConfig, policy: Policy, run_dir: Path, label: str) -> dict[str, Any]:
    """Pass@k of `policy` on the held-out tasks of `cfg.env`, through lm-eval's task `cfg.env.eval_task`."""
    done = run_dir / f"eval_{label}.json"
    if done.exists():
        return json.loads(done.read_text())
    s = cfg.sampling
    gen_kwargs = {"temperature": s.temperature, "top_p": s.top_p, "top_k": s.top_k, "max_gen_toks": s.max_new_tokens}
    if s.stop:
        gen_kwargs["until"] = list(s.stop)
    env = {"n_test": cfg.env.n_test, "tasks": plain(cfg.env.tasks), "kwargs": plain(cfg.env.kwargs), "history_window": cfg.history_window}
    out = evaluate_checkpoint(
        label,
        cfg.env.eval_task,
        cfg.backend.name,
        n_samples=cfg.n_samples,
        gen_kwargs=gen_kwargs,
        output_path=run_dir / "eval" / label,
        model_args={"max_concurrent": cfg.max_concurrent},
        metadata={cfg.env.name: env},
        seed=cfg.seed,
        policy=policy,
    )
    summary = out["tasks"][cfg.env.eval_task]
    done.write_text(json.dumps(summary, indent=2))
    return summary


def run_leafe(cfg: DictConfig, family: EnvFamily, run_dir: Path) -> tuple[dict[str, dict], dict[str, Any]]:
    """Stages 1 and 2, then the evaluation of the initial and the trained model."""
    m = cfg.method
    init = resolve_model(m.init or cfg.model)
    policy = load_policy(cfg, init)
    trees = explore(
        family.tasks("train", cfg.env.n_train, **cfg.env.tasks),
        family,
        plain(cfg.env.kwargs),
        policy,
        sampling_from(cfg.sampling, cfg.seed),
        sampling_from(m.reflection_sampling, cfg.seed),
        ExploreConfig(**{**plain(m.explore), "history_window": cfg.history_window}),
        run_dir / "trees.jsonl",
    )
    rows = {"base" if m.init is None else "init": evaluate(cfg, policy, run_dir, "base")}
    del policy  # frees the generation engine's memory for the trainer
    gc.collect()

    stats = distill(trees, family.system_prompt, DistillConfig(**plain(m.distill), history_window=cfg.history_window, seed=cfg.seed), run_dir / "sft")
    checkpoint = run_dir / "checkpoint"
    if not (checkpoint / DONE).exists():
        if stats.cf + stats.reh == 0:
            raise RuntimeError(
                f"stage 1 produced no training data: {stats.branches} branches, {stats.cf_candidates} eligible for D_cf, "
                f"{stats.successful_rollouts} successful rollouts ({run_dir / 'trees.jsonl'} is kept). Explore more "
                "(env.n_train, method.explore.budget), allow failed branches (method.distill.cf_only_successful=false) "
                "or raise method.distill.reh_fraction."
            )
        datasets, probs = leafe_mixture(run_dir / "sft" / "sft_cf.jsonl", run_dir / "sft" / "sft_reh.jsonl", m.beta)
        train(SFTConfig(model=init, datasets=datasets, dataset_probs=probs, output_dir=str(checkpoint), **plain(m.sft)))
        (checkpoint / DONE).touch()
    rows["leafe"] = evaluate(cfg, load_policy(cfg, str(checkpoint)), run_dir, "leafe")
    extra = {"exploration": explore_summary(trees), "distillation": stats.__dict__, "checkpoint": str(checkpoint)}
    return rows, extra


@hydra.main(version_base=None, config_path=str(CONF_DIR), config_name="config")
def main(cfg: DictConfig) -> None:
    run_dir = Path(HydraConfig.get().runtime.output_dir)
    family = get_family(cfg.env.name)
    if cfg.method.name == "leafe":
        rows, extra = run_leafe(cfg, family, run_dir)
    else:
        rows, extra = {"base": evaluate(cfg, load_policy(cfg, resolve_model(cfg.model)), run_dir, "base")}, {}
    results = {"method": cfg.method.name, "env": cfg.env.name, "model": cfg.model, "runs": rows, **extra, "config": plain(cfg)}
    (run_dir / "results.json").write_text(json.dumps(results, indent=2))
    n = next(iter(rows.values()))["n_tasks"]
    print(f"\n{cfg.env.name}: {n} held-out tasks x {cfg.n_samples} samples, model={cfg.model}, method={cfg.method.name}\n")
    print(markdown_table(rows))
    if "exploration" in extra:
        print("\nLEAFE stage 1 ledger (train tasks) and stage 2 data:\n")
        print(ledger_table(extra["exploration"], extra["distillation"]))
    print(f"\nartefacts: {run_dir}")


if __name__ == "__main__":
    main()
