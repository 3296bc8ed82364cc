"""The `leafe` Hydra app: one entry point for every method, environment and model.

    leafe                                         # method=base, env=sokoban, model=tiny
    leafe method=leafe experiment=smoke           # the whole LEAFE pipeline at laptop scale
    leafe model=Qwen/Qwen2.5-1.5B-Instruct n_samples=16
    leafe -m method=base,leafe model=tiny         # a sweep

The app resolves the model and the prompt window, dispatches to the method named by
`method.name` (METHODS: a module and its `run(cfg, family, run_dir) -> results`), and
writes and prints what the method returns. Every artefact is under Hydra's run folder;
results.json holds the method's results (Pass@k per evaluated model under "runs", its
ledgers), the history window used and where it came from, and the resolved config.
Rerunning with `hydra.run.dir=<that folder>` resumes (see leafe_recipe/records.py).
"""

from __future__ import annotations

import importlib
import json
import sys
from pathlib import Path
from typing import Any

import hydra
from hydra.core.hydra_config import HydraConfig
from hydra.types import RunMode
from omegaconf import DictConfig, open_dict

from leafe_recipe import CONF_DIR, Unavailable
from leafe_recipe.envs.base import get_family
from leafe_recipe.evaluate import plain
from leafe_recipe.prompts import PROMPT_SETTINGS, read_prompt_settings
from leafe_recipe.records import write_json
from leafe_recipe.report import ledger_table, markdown_table
from leafe_recipe.tiny import resolve_model

METHODS = {
    "base": "leafe_recipe.evaluate:run_base",
    "leafe": "leafe_recipe.leafe:run",
    "imitation": "baselines.imitation:run",
    "early_experience": "baselines.early_experience:run",
    "grpo": "baselines.grpo:run",
    "leafe_rl": "leafe_recipe.leafe:run_rl",
}


def method_entry(name: str):
    if name not in METHODS:
        raise SystemExit(f"leafe: unknown method {name!r}; methods: {', '.join(sorted(METHODS))}")
    module, function = METHODS[name].split(":")
    return getattr(importlib.import_module(module), function)


def resolve_window(cfg: DictConfig, start_model: str) -> dict[str, Any]:
    """The history window of the run: the environment's, or, for a model this project trained,
    the one it was trained with, unless env.history_window is on the command line."""
    given = any(o.lstrip("+").startswith("env.history_window=") for o in HydraConfig.get().overrides.task)
    settings = read_prompt_settings(start_model)
    if settings is not None and not given and settings["history_window"] != cfg.env.history_window:
        with open_dict(cfg):
            cfg.env.history_window = settings["history_window"]
        print(f"history window {cfg.env.history_window}: the one {start_model} was trained with ({PROMPT_SETTINGS})")
        return {"value": cfg.env.history_window, "source": f"{start_model}/{PROMPT_SETTINGS}"}
    return {"value": cfg.env.history_window, "source": "command line" if given else f"env config ({cfg.env.name})"}


def eval_cache_dir(cfg: DictConfig, run_dir: Path) -> str:
    if cfg.eval_cache_dir:
        return str(cfg.eval_cache_dir)
    hc = HydraConfig.get()
    return str(Path(hc.sweep.dir) / "eval_cache") if hc.mode == RunMode.MULTIRUN else str(run_dir / "eval")


@hydra.main(version_base=None, config_path=str(CONF_DIR), config_name="config")
def main(cfg: DictConfig) -> None:
    run_dir = Path(HydraConfig.get().runtime.output_dir)
    entry = method_entry(cfg.method.name)
    cell = {"method": cfg.method.name, "env": cfg.env.name, "model": cfg.model, "seed": cfg.seed}
    try:
        family = get_family(cfg.env.name)
        window = resolve_window(cfg, resolve_model(cfg.method.get("init") or cfg.model))
        with open_dict(cfg):
            cfg.eval_cache_dir = eval_cache_dir(cfg, run_dir)
        out = entry(cfg, family, run_dir)
    except Unavailable as err:  # not on this machine: a sweep records the cell and goes on
        write_json(run_dir / "results.json", {**cell, "not_run": str(err), "config": plain(cfg)})
        print(f"leafe: not run here: {err}", file=sys.stderr)
        if HydraConfig.get().mode != RunMode.MULTIRUN:
            sys.exit(1)
        return
    except Exception as err:  # the project's own errors say what to change; a traceback would not help
        if not type(err).__module__.startswith(("leafe_recipe", "baselines")):
            raise
        print(f"leafe: error: {err}", file=sys.stderr)
        sys.exit(1)
    results = {**cell, **out, "history_window": window, "config": plain(cfg)}
    write_json(run_dir / "results.json", results)
    rows = out["runs"]
    n = next(iter(rows.values()))["n_tasks"]
    print(f"\n{cfg.env.name}: {n} held-out tasks x {cfg.n_samples} samples, model={cfg.model}, method={cfg.method.name}\n")
    print(markdown_table(rows))
    if "exploration" in out:
        print("\nLEAFE stage 1 ledger (train tasks) and stage 2 data:\n")
        print(ledger_table(out["exploration"], out["distillation"]))
    print(f"\nartefacts: {run_dir}")


if __name__ == "__main__":
    main()
