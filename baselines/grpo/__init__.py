"""method=grpo: outcome RL with group-normalised advantages on the train tasks, at the run's
interaction budget, by one of two engines (`method.engine`):

- `openrlhf` (CUDA GPUs): OpenRLHF 0.11.2's Ray trainer with vLLM rollouts and this
  project's multi-turn agent (`openrlhf.py`, `agent.py`); `method.dry_run=true` writes the
  prompt data, the agent file and the exact command (also for a Ray cluster) and stops;
- `trl` (CPU, or one GPU): TRL's GRPOTrainer with a multi-turn rollout (`trl_engine.py`),
  configured to the same objective.

`auto` picks openrlhf where CUDA and vLLM are present, else trl; results.json says which
engine trained the model. Both build each episode as one token sequence whose every prompt
is the evaluation prompt (`turns.py`): the whole history, so the trained checkpoint carries
history_window null in its leafe_prompt.json and is evaluated that way.

Budget: an episode takes at most `env.max_episode_steps` steps and each train task is played
`group_size` times per pass, so the passes over the train tasks are `budget // (group_size x
max_episode_steps)` (at least one) unless `method.passes` is set; the ledger counts the
steps actually taken (TRL engine).
"""

from __future__ import annotations

import importlib.util
import json
import time
from pathlib import Path
from typing import Any

from omegaconf import DictConfig

from leafe_recipe import Unavailable
from leafe_recipe.envs.base import EnvFamily
from leafe_recipe.envs.pool import first_observations
from leafe_recipe.evaluate import evaluate, plain
from leafe_recipe.prompts import write_prompt_settings
from leafe_recipe.records import claim, model_identity, write_json
from leafe_recipe.tiny import resolve_model
from leafe_recipe.train import COMPLETE, NEW_FOLDER

ENGINES = ("auto", "openrlhf", "trl")
WINDOW = None  # the history window GRPO trains (and its checkpoints are evaluated) with


class GRPOError(RuntimeError):
    """GRPO cannot run as configured; the message says what to change."""


class NeedsGPU(Unavailable):
    """The OpenRLHF engine was asked for on a machine without CUDA GPUs and vLLM."""


def engine(name: str, dry_run: bool) -> str:
    import torch

    if name not in ENGINES:
        raise GRPOError(f"method.engine={name!r}: use one of {', '.join(ENGINES)}")
    gpus = torch.cuda.is_available() and importlib.util.find_spec("vllm") is not None
    if name == "auto":
        return "openrlhf" if gpus else "trl"
    if name == "openrlhf" and not gpus and not dry_run:
        raise NeedsGPU(
            "method.engine=openrlhf needs CUDA GPUs and vLLM (OpenRLHF rolls out only through vLLM engines): install "
            "`pip install -e .[gpu]` on a GPU machine, use method.engine=trl here, or method.dry_run=true to write "
            "the data, the agent and the command for a cluster"
        )
    return name


def train_grpo(cfg: DictConfig, m: DictConfig, family: EnvFamily, init: str, folder: Path) -> tuple[Path | None, dict[str, Any]]:
    """Train GRPO with the settings `m` (method=grpo's, or method.grpo of leafe_rl) into
    folder/checkpoint (reused when made with the same key); returns the checkpoint (None
    after a dry run) and what was spent and how."""
    g = {
        **plain(m),
        "max_new_tokens": cfg.env.max_new_tokens,
        "seed": cfg.seed,
        "passes": m.passes or max(1, cfg.budget // (m.group_size * cfg.env.max_episode_steps)),
    }
    name = engine(m.engine, m.dry_run)
    env_kwargs = plain(cfg.env.kwargs)
    tasks = family.tasks("train", cfg.env.n_train, **plain(cfg.env.tasks))
    g["prompts_per_step"] = min(g["prompts_per_step"], len(tasks))  # an update needs that many tasks
    info: dict[str, Any] = {"engine": name, "passes": g["passes"], "tasks": len(tasks), "group_size": g["group_size"]}
    checkpoint = folder / "checkpoint"
    key = {
        "stage": "grpo",
        "engine": name,
        "init": model_identity(init),
        "env": cfg.env.name,
        "tasks": plain(cfg.env.tasks),
        "n_train": cfg.env.n_train,
        "kwargs": env_kwargs,
        "grpo": {k: v for k, v in g.items() if k not in ("dry_run", "init")},
    }
    if name == "openrlhf":
        import torch

        from baselines.grpo import openrlhf

        settings = {"env": cfg.env.name, "env_kwargs": env_kwargs, "max_new_tokens": g["max_new_tokens"], "invalid_penalty": g["invalid_penalty"]}
        starts = list(zip(tasks, first_observations(family, env_kwargs, tasks)))
        cmd = openrlhf.prepare(g, init, folder, settings, family.system_prompt, starts, max(1, torch.cuda.device_count()))
        info["command"] = str(folder / "command.sh")
        if m.dry_run:
            print(f"[grpo] dry run: data, agent and command in {folder}; run:\n{(folder / 'command.sh').read_text()}", flush=True)
            return None, info
    claim(checkpoint, key, NEW_FOLDER)
    if (checkpoint / COMPLETE).exists():
        print(f"[grpo] {checkpoint} already trained", flush=True)
        return checkpoint, {**info, **key_ledger(checkpoint)}
    start = time.monotonic()
    ledger = {"env_steps": 0, "replay_steps": 0, "model_calls": 0, "gen_tokens": 0, "episodes": 0, "successes": 0}
    if name == "openrlhf":
        openrlhf.launch(cmd, folder)
        ledger = {"episodes": g["passes"] * len(tasks) * g["group_size"], "env_steps": None, "note": "steps in checkpoint/train.log"}
    else:
        from baselines.grpo import trl_engine

        trl_engine.train(g, init, family, env_kwargs, tasks, checkpoint, ledger)
    write_prompt_settings(checkpoint, WINDOW, cfg.env.name)
    write_json(checkpoint / COMPLETE, {**key, "ledger": ledger})
    print(f"[grpo] {name}: {g['passes']} passes over {len(tasks)} tasks x {g['group_size']} samples -> {checkpoint} "
          f"({time.monotonic() - start:.0f} s; {ledger.get('env_steps')} env steps)", flush=True)  # fmt: skip
    return checkpoint, {**info, **ledger}


def key_ledger(checkpoint: Path) -> dict[str, Any]:
    return json.loads((checkpoint / COMPLETE).read_text()).get("ledger", {})


def run(cfg: DictConfig, family: EnvFamily, run_dir: Path) -> dict[str, Any]:
    engine(cfg.method.engine, cfg.method.dry_run)  # before anything else: it may not run here at all
    init = resolve_model(cfg.method.init or cfg.model)
    runs = {"base": evaluate(cfg, init, "base", run_dir)}
    checkpoint, info = train_grpo(cfg, cfg.method, family, init, run_dir / "grpo")
    if checkpoint is not None:
        runs["grpo"] = evaluate(cfg, str(checkpoint), "grpo", run_dir, window=WINDOW)
    return {"runs": runs, "ledger": info, "engine": info["engine"], "checkpoint": str(checkpoint) if checkpoint else None}
