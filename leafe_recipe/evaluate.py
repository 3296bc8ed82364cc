"""The evaluate stage every method ends with, and the `base` method (the model as it is).

Pass@k of a model on the held-out tasks of `cfg.env`, through lm-eval's task
`cfg.env.eval_task` with the `leafe-agent` model (`evaluate_checkpoint`), so the app's
numbers and `leafe-eval`'s come from one code path. A finished evaluation is kept in the
evaluation cache under the hash of everything that produced it (the model's identity,
task, samples, sampling, history window, seed, environment settings) and reused only
when all of them match, before any model is loaded; in a Hydra multirun the cache is the
sweep's, so a base model is evaluated once for all the cells that share it.
"""

from __future__ import annotations

import json
import time
from pathlib import Path
from typing import Any, Callable

from omegaconf import DictConfig, OmegaConf

from leafe_recipe import tracking
from leafe_recipe.envs.base import EnvFamily
from leafe_recipe.policy import BackendConfig, Policy, Sampling, make_policy
from leafe_recipe.records import key_hash, model_identity, write_json
from leafe_recipe.tiny import resolve_model

PolicyLoader = Callable[[], Policy]


def plain(node: Any) -> Any:
    return OmegaConf.to_container(node, resolve=True) if isinstance(node, DictConfig) else node


def sampling_from(node: DictConfig, seed: int) -> Sampling:
    s = plain(node)
    return Sampling(**{**s, "stop": tuple(s["stop"]), "seed": seed})


def policy_loader(cfg: DictConfig, model_path: str) -> PolicyLoader:
    """Load the generation backend on first use only (a stage whose output is on disk needs none)."""
    loaded: list[Policy] = []

    def load() -> Policy:
        if not loaded:
            loaded.append(make_policy(model_path, BackendConfig(**plain(cfg.backend))))
        return loaded[0]

    return load


ENV_WINDOW = object()  # evaluate with the run's history window (cfg.env.history_window)


def evaluate(
    cfg: DictConfig, model_path: str, label: str, run_dir: Path, load: PolicyLoader | None = None, window: Any = ENV_WINDOW,
    playbook: Path | None = None,
) -> dict[str, Any]:  # fmt: skip
    """Pass@k of `model_path` on the run's environment (its summary, also written to
    run_dir/eval_<label>.json), with the run's history window unless `window` says another
    (a checkpoint trained with another), and with an ACE `playbook` file in its prompts when
    given; and on every environment of `eval_also` (the paper's out-of-distribution
    evaluation: MBPP for a model trained on CodeContests), under the summary's "also"."""
    window = cfg.env.history_window if window is ENV_WINDOW else window
    env = {"n_test": cfg.env.n_test, "tasks": plain(cfg.env.tasks), "kwargs": plain(cfg.env.kwargs)}
    summary = _evaluate_task(cfg, model_path, label, cfg.env.name, cfg.env.eval_task, env, cfg.sampling.max_new_tokens,
                             window, cfg.env.env_workers, load, playbook)  # fmt: skip
    for other, override in plain(cfg.get("eval_also") or {}).items():
        from leafe_recipe.lm_eval_plugin import env_config, task_spec

        conf = task_spec({"env": other}, {other: override or {}})
        task = env_config(other).eval_task
        settings = {"n_test": conf["n_test"], "tasks": conf["tasks"], "kwargs": conf["kwargs"]}
        summary.setdefault("also", {})[other] = _evaluate_task(
            cfg, model_path, f"{label}@{other}", other, task, settings, conf["max_new_tokens"], conf["history_window"],
            env_config(other).get("env_workers", 1), load, playbook,
        )  # fmt: skip
    write_json(run_dir / f"eval_{label}.json", summary)
    return summary


def _evaluate_task(
    cfg: DictConfig, model_path: str, label: str, env_name: str, task: str, env: dict[str, Any], max_new_tokens: int,
    window: int | None, env_workers: int, load: PolicyLoader | None, playbook: Path | None = None,
) -> dict[str, Any]:  # fmt: skip
    """One lm-eval task's summary, from the evaluation cache when everything that produced it matches."""
    from leafe_recipe.lm_eval_plugin import evaluate_checkpoint

    s = cfg.sampling
    sampling = {**plain(s), "max_new_tokens": max_new_tokens}
    key = {
        "stage": "evaluate",
        "model": model_identity(model_path),
        "task": task,
        "n_samples": cfg.n_samples,
        "sampling": sampling,
        "history_window": window,
        "seed": cfg.seed,
        "env": env,
    }
    if playbook is not None:
        key["playbook"] = Path(playbook).read_text()
    folder = Path(cfg.eval_cache_dir) / f"{task}-{key_hash(key)}"
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
            metadata=({env_name: env} if env else {}) | ({"playbook": str(playbook)} if playbook is not None else {}),
            seed=cfg.seed,
            policy=(load or policy_loader(cfg, model_path))(),
        )
        summary = {**out["tasks"][task], "task": task, "history_window": window, "samples_dir": out["output_path"]}
        groups = by_group(Path(out["output_path"]), task)
        if groups:
            summary["by_group"] = groups
        write_json(done, {"key": key, "summary": summary})
        note = f"{time.monotonic() - start:.0f} s"
    tracking.log(f"eval/{label}", {k: summary[k] for k in ("pass_at_k", "success_rate", "mean_turns", "invalid_action_rate") if k in summary})
    passk = ", ".join(f"Pass@{k} {100 * v:.1f}" for k, v in summary["pass_at_k"].items())
    print(f"[evaluate {label}] {summary['n_tasks']} tasks x {summary['n_samples']} samples: {passk} ({note})", flush=True)
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


def run_base(cfg: DictConfig, family: EnvFamily, run_dir: Path) -> dict[str, Any]:
    """method=base: evaluate `model` as it is."""
    path = resolve_model(cfg.model)
    return {"runs": {"base": evaluate(cfg, path, "base", run_dir)}}
