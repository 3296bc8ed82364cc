"""method=grpo: outcome RL with group-normalised advantages on the train tasks, at the run's
interaction budget, by one of two engines (`method.engine`):

- `openrlhf` (CUDA GPUs): OpenRLHF 0.11.2's Ray trainer with vLLM rollouts and this
  project's multi-turn agent (`openrlhf.py`, `agent.py`); `method.dry_run=true` writes the
  prompt data, the agent file and the exact command (also for a Ray cluster) and stops;
- `trl` (CPU, or one GPU): TRL's GRPOTrainer with a multi-turn rollout (`trl_engine.py`),
  configured to the same objective.

`auto` picks openrlhf where CUDA and vLLM are present, else trl; results.json says which
engine trained the model. Both build each episode as one token sequence whose every prompt
is the evaluation prompt (`turns.py`), which holds only for the whole history in the prompt:
GRPO runs with the run's prompt protocol like every method, and refuses a history window
(set env.history_window=null for every method of a comparison that includes GRPO).

Budget: an episode takes at most `env.max_episode_steps` steps and each train task is played
`group_size` times per pass, so the passes over the train tasks are `budget // (group_size x
max_episode_steps)` (at least one) unless `method.passes` is set; the ledger counts the
steps actually taken, the episodes (training examples) and the optimizer steps (TRL engine).
"""

from __future__ import annotations

import importlib.util
import json
import time
from pathlib import Path
from typing import Any

from omegaconf import DictConfig

from leafe_recipe import Unavailable
from leafe_recipe.context import RunContext, plain
from leafe_recipe.envs.pool import first_observations
from leafe_recipe.evaluate import evaluate
from leafe_recipe.manifest import write
from leafe_recipe.records import claim, write_json
from leafe_recipe.train import COMPLETE, NEW_FOLDER

ENGINES = ("auto", "openrlhf", "trl")


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


def check_protocol(ctx: RunContext) -> None:
    if ctx.prompt.history_window is not None:
        raise GRPOError(
            f"GRPO trains one token sequence per episode, whose every prompt is the evaluation prompt only with the whole "
            f"history; this run's prompt protocol keeps {ctx.prompt.history_window} past steps "
            f"(history_window from {ctx.prompt.source['history_window']}). Set env.history_window=null for every method of "
            "the comparison, so that all are trained and evaluated with one protocol"
        )


def train_grpo(ctx: RunContext, m: DictConfig, folder: Path) -> tuple[Path | None, dict[str, Any]]:
    """Train GRPO with the settings `m` (method=grpo's, or method.grpo of leafe_rl) from the
    context's starting model into folder/checkpoint (reused when made with the same key); returns
    the checkpoint (None after a dry run) and what was spent and how."""
    check_protocol(ctx)
    cfg = ctx.cfg
    g = {
        **plain(m),
        "max_new_tokens": ctx.prompt.max_new_tokens,
        "temperature": float(cfg.sampling.temperature),
        "seed": ctx.seed,
        "passes": m.passes or max(1, cfg.budget // (m.group_size * cfg.env.max_episode_steps)),
    }
    name = engine(m.engine, m.dry_run)
    tasks = ctx.tasks("train")
    g["prompts_per_step"] = min(g["prompts_per_step"], len(tasks))  # an update needs that many tasks
    info: dict[str, Any] = {"engine": name, "passes": g["passes"], "tasks": len(tasks), "group_size": g["group_size"]}
    checkpoint = folder / "checkpoint"
    key = ctx.key("grpo", engine=name, n_train=cfg.env.n_train, grpo={k: v for k, v in g.items() if k not in ("dry_run", "init")})
    if name == "openrlhf":
        import torch

        from baselines.grpo import openrlhf

        settings = {"env": cfg.env.name, "env_kwargs": ctx.env_kwargs, "max_new_tokens": g["max_new_tokens"], "invalid_penalty": g["invalid_penalty"]}
        starts = list(zip(tasks, first_observations(ctx.family, ctx.env_kwargs, tasks)))
        cmd = openrlhf.prepare(g, ctx.init, folder, settings, ctx.family.system_prompt, starts, max(1, torch.cuda.device_count()))
        info["command"] = str(folder / "command.sh")
        if m.dry_run:
            print(f"[grpo] dry run: data, agent and command in {folder}; run:\n{(folder / 'command.sh').read_text()}", flush=True)
            return None, info
    claim(checkpoint, key, NEW_FOLDER)
    if (checkpoint / COMPLETE).exists():
        print(f"[grpo] {checkpoint} already trained", flush=True)
        return checkpoint, {**info, **json.loads((checkpoint / COMPLETE).read_text()).get("ledger", {})}
    start = time.monotonic()
    ledger = {"env_steps": 0, "replay_steps": 0, "model_calls": 0, "gen_tokens": 0, "episodes": 0, "successes": 0}
    if name == "openrlhf":
        openrlhf.launch(cmd, folder)
        ledger = {"episodes": g["passes"] * len(tasks) * g["group_size"], "env_steps": None, "note": "steps in checkpoint/train.log"}
    else:
        from baselines.grpo import trl_engine

        trl_engine.train(g, ctx.init, ctx.family, ctx.env_kwargs, tasks, checkpoint, ledger)
    ledger["train_examples"] = ledger["episodes"]
    write(checkpoint, ctx.manifest_for("grpo", ctx.learned(tasks, "grpo"), key, parent=ctx.init))
    write_json(checkpoint / COMPLETE, {**key, "ledger": ledger})
    print(f"[grpo] {name}: {g['passes']} passes over {len(tasks)} tasks x {g['group_size']} samples, {ledger.get('gradient_steps')} "
          f"gradient steps -> {checkpoint} ({time.monotonic() - start:.0f} s; {ledger.get('env_steps')} env steps)", flush=True)  # fmt: skip
    return checkpoint, {**info, **ledger}


def run(ctx: RunContext) -> dict[str, Any]:
    engine(ctx.cfg.method.engine, ctx.cfg.method.dry_run)  # before anything else: it may not run here at all
    check_protocol(ctx)
    runs = {"base": evaluate(ctx, ctx.init, "base")}
    checkpoint, info = train_grpo(ctx, ctx.cfg.method, ctx.run_dir / "grpo")
    if checkpoint is not None:
        runs["grpo"] = evaluate(ctx, str(checkpoint), "grpo")
    return {"runs": runs, "ledger": info, "engine": info["engine"], "checkpoint": str(checkpoint) if checkpoint else None}
