"""The `leafe` Hydra app: one entry point for every method, environment and model.

    leafe                                         # method=base, env=sokoban, model=tiny
    leafe method=leafe experiment=smoke           # the whole LEAFE pipeline at laptop scale
    leafe model=Qwen/Qwen2.5-1.5B-Instruct n_samples=16
    leafe -m method=base,leafe model=tiny         # a sweep (leafe-report <sweep folder> turns it into tables)
    leafe -m experiment=smoke_sweep               # every method on the tiny model

The app resolves the model and the prompt window, dispatches to the method named by
`method.name` (METHODS: a module and its `run(cfg, family, run_dir) -> results`), and
writes and prints what the method returns. Every artefact is under Hydra's run folder;
results.json holds the method's results (Pass@k per evaluated model under "runs", its
ledgers), the history window used and where it came from, and the resolved config.
Rerunning with `hydra.run.dir=<that folder>` resumes (see leafe_recipe/records.py).
A cell that cannot run on this machine (`Unavailable`) writes results.json with `not_run`
and the reason; in a sweep, one that fails writes `failed`, the reason and the traceback;
either way the sweep goes on (a single run exits with status 1).
"""

from __future__ import annotations

import importlib
import json
import sys
import traceback
from pathlib import Path
from typing import Any

import hydra
from hydra.core.hydra_config import HydraConfig
from hydra.types import RunMode
from omegaconf import DictConfig, open_dict

from leafe_recipe import CONF_DIR, Unavailable, tracking
from leafe_recipe.envs.base import get_family
from leafe_recipe.evaluate import plain
from leafe_recipe.prompts import PROMPT_SETTINGS, read_prompt_settings
from leafe_recipe.records import write_json
from leafe_recipe.report import ledger_table, markdown_table, paired_vs_base, search_table
from leafe_recipe.tiny import resolve_model

METHODS = {
    "base": "leafe_recipe.evaluate:run_base",
    "leafe": "leafe_recipe.leafe:run",
    "imitation": "baselines.imitation:run",
    "early_experience": "baselines.early_experience:run",
    "grpo": "baselines.grpo:run",
    "leafe_rl": "leafe_recipe.leafe:run_rl",
    "search_compare": "leafe_recipe.search:run",
    "ace": "baselines.ace:run",
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
    if cfg.shard is not None and cfg.method.name != "leafe":
        raise SystemExit(f"leafe: shard={cfg.shard} shards LEAFE's stage 1 (method=leafe), not method={cfg.method.name}; "
                         "evaluations shard through lm-eval: --metadata '{\"shard\": \"i/N\"}' (tasks/README.md)")  # fmt: skip
    cell = {"method": cfg.method.name, "env": cfg.env.name, "model": cfg.model, "seed": cfg.seed}
    sweep = HydraConfig.get().mode == RunMode.MULTIRUN
    group = Path(HydraConfig.get().sweep.dir).name if sweep else run_dir.name
    try:
        tracking.start(plain(cfg.logger), run_dir, f"{cfg.method.name}_{cfg.env.name}_{cfg.seed}_{run_dir.name}", group, plain(cfg))
        family = get_family(cfg.env.name)
        window = resolve_window(cfg, resolve_model(cfg.method.get("init") or cfg.model))
        with open_dict(cfg):
            cfg.eval_cache_dir = eval_cache_dir(cfg, run_dir)
        out = entry(cfg, family, run_dir)
    except Exception as err:
        # Not on this machine (Unavailable), or failed: a sweep records the cell and goes on to
        # the next; a single run stops. The project's own errors say what to change, so they
        # print without a traceback.
        tracking.finish()
        ours = type(err).__module__.startswith(("leafe_recipe", "baselines"))
        if isinstance(err, Unavailable):
            write_json(run_dir / "results.json", {**cell, "not_run": str(err), "config": plain(cfg)})
            print(f"leafe: not run here: {err}", file=sys.stderr)
        elif sweep:
            reason = str(err) if ours else f"{type(err).__name__}: {err}"
            write_json(run_dir / "results.json", {**cell, "failed": reason, "traceback": traceback.format_exc(), "config": plain(cfg)})
            print(f"leafe: error: {reason} (recorded in {run_dir / 'results.json'}; the sweep goes on)", file=sys.stderr)
        elif ours:
            print(f"leafe: error: {err}", file=sys.stderr)
        else:
            raise
        if not sweep:
            sys.exit(1)
        return
    results = {**cell, **out, "history_window": window, "config": plain(cfg)}
    write_json(run_dir / "results.json", results)
    tracking.log("ledger", out.get("ledger") or {})
    tracking.finish()
    if out["runs"]:
        n = next(iter(out["runs"].values()))["n_tasks"]
        print(f"\n{cfg.env.name}: {n} held-out tasks x {cfg.n_samples} samples, model={cfg.model}, method={cfg.method.name}\n")
        print(markdown_table(out["runs"]))
        if paired := paired_vs_base(out["runs"]):
            print(f"\nPaired against the base model it started from:\n\n{paired}")
    if "exploration" in out:
        print("\nLEAFE stage 1 ledger (train tasks) and stage 2 data:\n")
        print(ledger_table(out["exploration"], out["distillation"]))
    if "search" in out:
        print(f"\nStage 1 as a search (train tasks, budget {out['search']['budget']} steps per task):\n")
        print(search_table(run_dir, out["search"]))
    print(f"\nartefacts: {run_dir}")


if __name__ == "__main__":
    main()
