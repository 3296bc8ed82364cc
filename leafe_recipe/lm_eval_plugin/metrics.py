"""The leafe tasks' filter, metrics and aggregations: each sample becomes an episode record
(a single-turn completion is played in the environment, which judges it), and each problem's
samples give Pass@k for every k, its per-sample correctness, turns and invalid actions."""

from __future__ import annotations

import json
import os
from collections.abc import Iterable, Sequence
from typing import Any

from leafe_recipe.envs.base import get_family
from leafe_recipe.lm_eval_plugin.tasks import EPISODE_KEY, LeafeEvalError, _is_leafe_doc, _settings, _task
from leafe_recipe.passk import ks_up_to, pass_at_k


def _record(text: str) -> dict[str, Any] | None:
    if not isinstance(text, str) or not text.startswith("{"):
        return None
    try:
        value = json.loads(text)
    except json.JSONDecodeError:
        return None
    return value if isinstance(value, dict) and value.get(EPISODE_KEY) else None


def _episode_json(success: bool, turns: int, invalid: int, final_observation: str, **extra: Any) -> str:
    return json.dumps(
        {
            EPISODE_KEY: 1,
            "success": bool(success),
            "turns": int(turns),
            "invalid_actions": int(invalid),
            **extra,
            "final_observation": final_observation,
        }
    )


def play_completions(resps: Iterable[Sequence[str]], docs: Iterable[dict]) -> list[list[str]]:
    """lm-eval filter: every sample as an episode record (JSON).

    A sample that is already an episode (from leafe-agent) is kept; a plain completion
    (lm-eval's hf or vllm model) of a single-turn task is played as the episode's one
    action: the environment extracts the code and judges it in the sandbox. Every
    completion of every problem is judged in one thread pool (each judgement is its own
    sandboxed process). A plain completion of an interactive task is an error.
    """
    resps, docs = [list(r) for r in resps], list(docs)
    jobs: list[tuple[int, int]] = []
    for i, (samples, doc) in enumerate(zip(resps, docs, strict=True)):
        if not _is_leafe_doc(doc):
            raise LeafeEvalError("play_completions is the filter of leafe tasks; this document is not one")
        for j, text in enumerate(samples):
            if _record(text) is None:
                if _settings(doc)["interactive"]:
                    raise LeafeEvalError(
                        f"task env {doc['env']!r} is interactive: its episodes need the model `leafe-agent` "
                        "(`--model leafe-agent --model_args backend=hf|vllm,pretrained=CKPT`); this model returned "
                        "one plain completion per sample"
                    )
                jobs.append((i, j))

    if jobs:
        from leafe_recipe.envs.pool import EnvPool
        from leafe_recipe.rollout import step_envs

        by_settings: dict[str, list[tuple[int, int]]] = {}
        for i, j in jobs:
            by_settings.setdefault(docs[i]["settings"], []).append((i, j))
        for settings_json, group in by_settings.items():  # one pool per environment setting, waves of its capacity
            settings = json.loads(settings_json)
            with EnvPool(get_family(settings["env"]), settings["kwargs"]) as pool:
                while group:
                    wave, envs = [], []
                    while group and pool.available != 0:
                        i, j = group.pop(0)
                        env = pool.acquire()
                        env.reset(_task(docs[i]["task"]))
                        wave.append((i, j))
                        envs.append(env)
                    steps = step_envs(envs, [resps[i][j] for i, j in wave], workers=os.cpu_count() or 1)
                    for (i, j), env, step in zip(wave, envs, steps):
                        resps[i][j] = _episode_json(step.success, 1, bool(step.info.get("invalid")), step.observation)
                        pool.release(env)
    return resps


def _check_ks(ks: Sequence[int], n: int, where: str) -> None:
    if max(ks) > n:
        raise LeafeEvalError(
            f"{where}: Pass@k for k={max(ks)} needs at least k samples per problem, but the task draws n={n} "
            f"(`repeats`). Raise repeats to >= {max(ks)} or ask for ks <= {n}"
        )


def process_results(doc: dict[str, Any], results: list) -> dict[str, Any]:
    """Per-problem metrics from its n episode records (see the module docstring)."""
    samples = results[0] if len(results) == 1 and isinstance(results[0], (list, tuple)) else results
    records = []
    for text in samples:
        record = _record(text)
        if record is None:
            raise LeafeEvalError(
                "a leafe task's samples must pass through its filter `play_completions` (filter_list in the task YAML)"
            )
        records.append(record)
    n = len(records)
    c = sum(bool(r["success"]) for r in records)
    settings = _settings(doc)
    ks = settings.get("ks") or ks_up_to(n)
    _check_ks(ks, n, f"problem {doc['env']}/{doc['id']}")
    table = pass_at_k([n], [c], ks)[0]
    steps = sum(int(r["turns"]) for r in records)
    return {
        **{f"pass@{k}": float(v) + 0.0 for k, v in zip(ks, table)},  # + 0.0: no -0.0
        "correct": [int(bool(r["success"])) for r in records],
        "mean_turns": steps / n,
        "invalid_action_rate": [sum(int(r["invalid_actions"]) for r in records), steps],
    }


def success_rate(items: Sequence[Sequence[int]]) -> float:
    """Aggregation of `correct`: the fraction of all samples that succeeded."""
    total = sum(len(x) for x in items)
    return sum(sum(x) for x in items) / total if total else float("nan")


def pooled_rate(items: Sequence[Sequence[int]]) -> float:
    """Aggregation of [count, steps] pairs: sum of counts over sum of steps (pooled over episodes)."""
    steps = sum(x[1] for x in items)
    return sum(x[0] for x in items) / steps if steps else 0.0
