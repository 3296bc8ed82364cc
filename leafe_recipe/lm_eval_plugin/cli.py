"""One code path for the `leafe` app's evaluate stage and the command line: `evaluate_checkpoint`
(lm-eval's simple_evaluate on a leafe task, with the leafe-agent model, lm-eval's hf or vllm),
the summary the app keeps, and `leafe-eval` (lm-eval's own command line with tasks/ on its
include path and leafe-agent registered)."""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Any

from leafe_recipe import TASKS_DIR
from leafe_recipe.envs.code_data import DatasetUnavailable
from leafe_recipe.lm_eval_plugin.agent import LeafeAgent
from leafe_recipe.lm_eval_plugin.tasks import LeafeEvalError


def summarize_results(results: dict[str, Any]) -> dict[str, dict[str, Any]]:
    """Per task: Pass@k (keyed by str(k)), success rate, mean turns and invalid-action rate,
    read from lm-eval's aggregated results (the shape `leafe_recipe.report` tables take)."""
    out = {}
    for task, metrics in results.get("results", {}).items():
        passk = {
            key.split(",")[0].removeprefix("pass@"): value
            for key, value in metrics.items()
            if key.startswith("pass@") and "_stderr" not in key
        }
        if not passk:
            continue  # a group
        config = results.get("configs", {}).get(task, {})
        out[task] = {
            "n_tasks": results.get("n-samples", {}).get(task, {}).get("effective"),
            "n_samples": config.get("repeats"),
            "pass_at_k": dict(sorted(passk.items(), key=lambda kv: int(kv[0]))),
            "success_rate": metrics.get("correct,none"),
            "mean_turns": metrics.get("mean_turns,none"),
            "invalid_action_rate": metrics.get("invalid_action_rate,none"),
        }
    return out


def evaluate_checkpoint(
    model_path: str,
    task_name: str,
    backend: str = "hf",
    n_samples: int | None = None,
    limit: int | float | None = None,
    gen_kwargs: dict[str, Any] | str | None = None,
    output_path: str | Path | None = None,
    *,
    model: str = "leafe-agent",
    model_args: dict[str, Any] | None = None,
    metadata: dict[str, Any] | None = None,
    log_samples: bool = True,
    seed: int = 0,
    include_defaults: bool = False,
    policy: Any = None,
) -> dict[str, Any]:
    """Evaluate a checkpoint on a leafe task or group with `lm_eval.simple_evaluate`.

    model_path: checkpoint directory, hub id or `tiny`. task_name: a task or group name
    from tasks/ (leafe_sokoban, leafe_code, ...) or a task YAML path. backend: hf or vllm.
    n_samples: samples per problem (the task's `repeats`; None: the YAML's, 128).
    limit: problems (lm-eval's --limit). gen_kwargs: overrides of the YAML's sampling
    (lm-eval's --gen_kwargs). output_path: where lm-eval writes results_*.json and, with
    log_samples, samples_<task>_*.jsonl (what leafe-compare reads). model: `leafe-agent`
    (default; every task), or lm-eval's `hf` / `vllm` for single-turn tasks (then with the
    chat template applied). model_args: more model arguments. metadata: task overrides, as
    --metadata (e.g. {"sokoban": {"kwargs": {"max_steps": 20}}, "mbpp_path": FILE}).
    include_defaults: index lm-eval's own tasks too (slow: thousands of YAMLs; off: tasks/ only).
    policy: an already loaded `leafe_recipe.policy` backend to evaluate instead of loading
    model_path (with model="leafe-agent"; model_path then only names the run).

    Returns {"tasks": {task: summary}, "results": lm-eval's results (samples removed),
    "output_path": the folder written or None}; a summary has the keys
    pass_at_k (keyed by str(k)), success_rate, mean_turns,
    invalid_action_rate, n_tasks, n_samples).
    """
    import lm_eval
    from lm_eval.loggers import EvaluationTracker
    from lm_eval.tasks import TaskManager

    lm, args = _model(model_path, backend, model, model_args, seed, policy)
    manager = TaskManager(include_path=str(TASKS_DIR), include_defaults=include_defaults, metadata=dict(metadata or {}))
    spec: Any = str(Path(task_name).resolve()) if str(task_name).endswith(".yaml") else task_name
    loaded = manager.load([spec])
    if n_samples is not None:
        for task in loaded["tasks"].values():
            task.set_config(key="repeats", value=int(n_samples))
    children = {c for names in loaded.get("group_map", {}).values() for c in names}
    roots = [g for name, g in loaded.get("groups", {}).items() if name not in children]
    roots += [t for name, t in loaded["tasks"].items() if name not in children]
    tracker = EvaluationTracker(output_path=str(output_path)) if output_path else None
    results = lm_eval.simple_evaluate(
        model=lm, model_args=args, tasks=roots, limit=limit, gen_kwargs=gen_kwargs, task_manager=manager, log_samples=log_samples,
        evaluation_tracker=tracker, apply_chat_template=model != "leafe-agent", confirm_run_unsafe_code=True,
        random_seed=seed, numpy_random_seed=seed, torch_random_seed=seed,
    )  # fmt: skip
    samples = results.pop("samples", None) if results else None
    written = None
    if tracker is not None and results is not None:
        tracker.save_results_aggregated(results=results, samples=samples)
        if log_samples and samples:
            for name in results["configs"]:
                tracker.save_results_samples(task_name=name, samples=samples[name])
        written = str(Path(output_path) / tracker.general_config_tracker.model_name_sanitized)
    return {"tasks": summarize_results(results or {}), "results": results, "output_path": written}


def _model(model_path: str, backend: str, model: str, model_args: dict[str, Any] | None, seed: int, policy: Any) -> tuple[Any, Any]:
    """lm-eval's `model` and `model_args` for evaluate_checkpoint: leafe-agent (or a loaded policy wrapped in it), hf or vllm."""
    from leafe_recipe import models

    path = models.resolve(str(model_path)) if policy is None else str(model_path)
    if model == "leafe-agent":
        args = {"pretrained": path, "backend": backend, "seed": seed, **(model_args or {})}
        if policy is None:
            return model, args
        extra = {k: v for k, v in (model_args or {}).items() if k in ("max_concurrent", "env_workers", "history_window")}
        return LeafeAgent.from_policy(policy, name=path, seed=seed, **extra), None
    if model in ("hf", "vllm") and policy is None:
        args = {"pretrained": path, **(model_args or {})}
        return model, hf_attention(args, args.get("device")) if model == "hf" else args
    raise LeafeEvalError(f"model must be leafe-agent, hf or vllm (a policy needs leafe-agent), got {model!r}")


def hf_attention(model_args: dict[str, Any], device: Any) -> dict[str, Any]:
    """lm-eval `hf` model arguments with the attention kernel chosen as for every other model
    this project loads (leafe_recipe.gpu.choose_attention: flash-attn where it imports and
    applies, else sdpa), unless they name one."""
    if "attn_implementation" in model_args or not model_args.get("pretrained"):
        return model_args
    import torch

    from leafe_recipe.gpu import choose_attention, model_dtype

    on_gpu = torch.cuda.is_available() and not str(device or "cuda").startswith("cpu")  # lm-eval's default device: cuda
    try:
        dtype = model_dtype(str(model_args["pretrained"]), str(model_args.get("dtype") or "auto"))
    except (OSError, ValueError):  # no readable config there: lm-eval's own load says so
        return model_args
    return {**model_args, "attn_implementation": choose_attention(None, on_gpu, dtype, "lm-eval hf")}


def cli(argv: list[str] | None = None) -> None:
    """`leafe-eval`: lm-eval's command line (run, ls, validate) with the leafe-agent model
    registered and tasks/ on the include path (before any --include_path given)."""
    from lm_eval._cli import HarnessCLI
    from lm_eval.utils import setup_logging

    if argv is not None:
        sys.argv = [sys.argv[0], *argv]
    setup_logging()
    parser = HarnessCLI()
    args = parser.parse_args()
    if hasattr(args, "include_path"):
        args.include_path = [str(TASKS_DIR), *([args.include_path] if args.include_path else [])]
    if getattr(args, "model", None) in (None, "hf") and getattr(args, "model_args", None):
        args.model_args = hf_attention(args.model_args, getattr(args, "device", None))
    try:
        parser.execute(args)
    except (LeafeEvalError, DatasetUnavailable) as err:
        raise SystemExit(f"leafe-eval: error: {err}") from None
