"""The evaluate stage every method ends with, and the `base` method (the model as it is).

Pass@k of a model on the run's evaluation split (`eval_split`: validation for model selection
and tuning, test for the reported numbers) through lm-eval's task `cfg.env.eval_task` with the
`leafe-agent` model (`evaluate_checkpoint`), so the app's numbers and `leafe-eval`'s come from
one code path, always with the run's prompt protocol. A finished evaluation is kept in the
evaluation cache under the hash of everything that produced it (the model's identity, task,
split, samples, sampling, prompt protocol, seed, environment settings) and reused only when all
of them match, before any model is loaded; in a Hydra multirun the cache is the sweep's, so a
base model is evaluated once for all the cells that share it.
"""

from __future__ import annotations

import json
import time
from pathlib import Path
from typing import Any

from leafe_recipe import models, tracking
from leafe_recipe.context import PolicyLoader, RunContext, plain
from leafe_recipe.records import key_hash, write_json


def evaluate(ctx: RunContext, model_path: str, label: str, load: PolicyLoader | None = None, playbook: Path | None = None) -> dict[str, Any]:
    """Pass@k of `model_path` on the run's environment (its summary, also written to
    run_dir/eval_<label>.json), with an ACE `playbook` file in its prompts when given; and on
    every environment of `eval_also` (the paper's out-of-distribution evaluation: MBPP for a
    model trained on CodeContests), under the summary's "also"."""
    cfg = ctx.cfg
    env = {"split": ctx.split, "n_test": ctx.size(ctx.split), "tasks": plain(cfg.env.tasks), "kwargs": ctx.env_kwargs}
    summary = _evaluate_task(ctx, model_path, label, cfg.env.name, cfg.env.eval_task, env, ctx.prompt.max_new_tokens,
                             ctx.prompt.history_window, cfg.env.env_workers, load, playbook)  # fmt: skip
    for other, override in plain(cfg.get("eval_also") or {}).items():
        from leafe_recipe.envs.base import env_config
        from leafe_recipe.lm_eval_plugin import task_spec

        conf = task_spec({"env": other}, {other: override or {}})
        settings = {"split": "test", "n_test": conf["n_test"], "tasks": conf["tasks"], "kwargs": conf["kwargs"]}
        summary.setdefault("also", {})[other] = _evaluate_task(
            ctx, model_path, f"{label}@{other}", other, env_config(other).eval_task, settings, conf["max_new_tokens"],
            conf["history_window"], env_config(other).get("env_workers", 1), load, playbook,
        )  # fmt: skip
    write_json(ctx.run_dir / f"eval_{label}.json", summary)
    return summary


def _evaluate_task(
    ctx: RunContext, model_path: str, label: str, env_name: str, task: str, env: dict[str, Any], max_new_tokens: int,
    window: int | None, env_workers: int, load: PolicyLoader | None, playbook: Path | None = None,
) -> dict[str, Any]:  # fmt: skip
    """One lm-eval task's summary, from the evaluation cache when everything that produced it matches."""
    from leafe_recipe.lm_eval_plugin import evaluate_checkpoint

    cfg = ctx.cfg
    s = cfg.sampling
    key = {
        "stage": "evaluate",
        "model": models.identity(model_path),
        "task": task,
        "n_samples": cfg.n_samples,
        "sampling": {**plain(s), "max_new_tokens": max_new_tokens},
        "history_window": window,
        "seed": ctx.seed,
        "env": env,
    }
    if playbook is not None:
        key["playbook"] = Path(playbook).read_text()
    folder = ctx.eval_cache / f"{task}-{key_hash(key)}"
    done = folder / "summary.json"
    start = time.monotonic()
    if done.exists():
        summary = json.loads(done.read_text())["summary"]
        note = "reused from " + str(folder)
    else:
        gen_kwargs = {"temperature": s.temperature, "top_p": s.top_p, "top_k": s.top_k, "max_gen_toks": max_new_tokens}
        if s.stop:
            gen_kwargs["until"] = list(s.stop)
        out = evaluate_checkpoint(
            label,
            task,
            cfg.backend.name,
            n_samples=cfg.n_samples,
            gen_kwargs=gen_kwargs,
            output_path=folder / "lm_eval",
            model_args={"max_concurrent": cfg.max_concurrent, "history_window": window, "env_workers": env_workers},
            metadata={env_name: env} | ({"playbook": str(playbook)} if playbook is not None else {}),
            seed=ctx.seed,
            policy=(load or ctx.loader(model_path))(),
        )
        summary = {**out["tasks"][task], "task": task, "split": env["split"], "history_window": window, "samples_dir": out["output_path"]}
        groups = by_group(Path(out["output_path"]), task)
        if groups:
            summary["by_group"] = groups
        write_json(done, {"key": key, "summary": summary})
        note = f"{time.monotonic() - start:.0f} s"
    tracking.log(f"eval/{label}", {k: summary[k] for k in ("pass_at_k", "success_rate", "mean_turns", "invalid_action_rate") if k in summary})
    passk = ", ".join(f"Pass@{k} {100 * v:.1f}" for k, v in summary["pass_at_k"].items())
    print(f"[evaluate {label}] {summary['n_tasks']} {env['split']} tasks x {summary['n_samples']} samples: {passk} ({note})", flush=True)
    return summary


def by_group(samples_dir: Path, task: str) -> dict[str, dict[str, Any]]:
    """Pass@k per group of tasks (ALFWorld's task types, ScienceWorld's tasks: a task's
    data["group"]), from lm-eval's per-sample log; empty where tasks have no group."""
    from leafe_recipe.passk import ks_up_to, mean_pass_at_k
    from leafe_recipe.records import read_jsonl

    correct: dict[str, list[list[int]]] = {}
    for path in sorted(samples_dir.glob(f"samples_{task}_*.jsonl")):
        for record in read_jsonl(path):
            group = json.loads(record["doc"]["task"])["data"].get("group")
            if group is not None:
                correct.setdefault(group, []).append(record["correct"])
    out = {}
    for group, rows in sorted(correct.items()):
        n, c = [len(r) for r in rows], [sum(r) for r in rows]
        out[group] = {"n_tasks": len(rows), "pass_at_k": {str(k): v for k, v in mean_pass_at_k(n, c, ks_up_to(min(n))).items()}}
    return out


def run_base(ctx: RunContext) -> dict[str, Any]:
    """method=base: evaluate the model as it is."""
    return {"runs": {"base": evaluate(ctx, ctx.init, "base")}}
