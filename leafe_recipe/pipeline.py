"""The `leafe` Hydra app: one entry point for every method, environment and model.

    leafe                                   # method=base, env=sokoban, model=tiny
    leafe model=Qwen/Qwen2.5-1.5B-Instruct n_samples=16
    leafe -m env=sokoban method=base model=tiny,/ckpt/a   # a sweep

Every artefact is written under Hydra's run folder: trajectories.jsonl (one record
per held-out task) and results.json (Pass@k and episode statistics). Rerunning with
`hydra.run.dir=<that folder>` resumes: finished tasks are not played again.
"""

from __future__ import annotations

import json
from pathlib import Path

import hydra
from hydra.core.hydra_config import HydraConfig
from omegaconf import DictConfig, OmegaConf

from leafe_recipe import CONF_DIR
from leafe_recipe.envs.base import get_family
from leafe_recipe.policy import BackendConfig, Sampling, make_policy
from leafe_recipe.report import markdown_table, summarize
from leafe_recipe.rollout import rollout


def sampling_from(cfg: DictConfig) -> Sampling:
    s = OmegaConf.to_container(cfg.sampling, resolve=True)
    return Sampling(**{**s, "stop": tuple(s["stop"]), "seed": cfg.seed})


def evaluate(cfg: DictConfig, model: str, run_dir: Path, label: str) -> dict:
    """Pass@k of `model` on the held-out tasks of `cfg.env`."""
    family = get_family(cfg.env.name)
    tasks = family.tasks("test", cfg.env.n_test, **cfg.env.tasks)
    policy = make_policy(model, BackendConfig(**OmegaConf.to_container(cfg.backend, resolve=True)))
    path = rollout(
        tasks,
        cfg.n_samples,
        family,
        OmegaConf.to_container(cfg.env.kwargs, resolve=True),
        policy,
        sampling_from(cfg),
        run_dir / f"trajectories_{label}.jsonl",
        history_window=cfg.history_window,
        max_concurrent=cfg.max_concurrent,
    )
    return summarize(path)


@hydra.main(version_base=None, config_path=str(CONF_DIR), config_name="config")
def main(cfg: DictConfig) -> None:
    run_dir = Path(HydraConfig.get().runtime.output_dir)
    rows = {cfg.method.name: evaluate(cfg, cfg.model, run_dir, cfg.method.name)}
    results = {
        "method": cfg.method.name,
        "env": cfg.env.name,
        "model": cfg.model,
        "runs": rows,
        "config": OmegaConf.to_container(cfg, resolve=True),
    }
    (run_dir / "results.json").write_text(json.dumps(results, indent=2))
    print(f"\n{cfg.env.name}: {rows[cfg.method.name]['n_tasks']} held-out tasks x {cfg.n_samples} samples, model={cfg.model}\n")
    print(markdown_table(rows))
    print(f"\nartefacts: {run_dir}")


if __name__ == "__main__":
    main()
