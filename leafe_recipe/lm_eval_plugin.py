"""lm-eval integration: the functions behind the `tasks/` folders, the `leafe-agent` model,
`evaluate_checkpoint` (the pipeline's evaluate stage) and the `leafe-eval` command.

Importing this module registers the lm-eval model `leafe-agent`. Every task folder's
utils.py imports it, so lm-eval registers the model whenever it resolves a leafe task's
functions (a task named by its YAML path on the `lm_eval` command line, for instance).

Tasks (see tasks/README.md). Every leafe task builds its documents with
:func:`leafe_dataset` from a registered environment family and its task loader (the same
loaders the `leafe` app uses, so the hub default and the local-file override are one code
path). One document per problem holds the Task as JSON and the episode settings; the task
asks for `repeats: n` samples per problem and keeps all of them (lm-eval's default filter
keeps only the first): its filter :func:`play_completions` maps each sample to an episode
record (a single-turn completion from `--model hf|vllm` is played in the environment, which
judges it in the sandbox; an episode from `leafe-agent` already is one)
and reports, per problem (:func:`process_results`), Pass@k for k = 1, 2, 4, ..., n from
`leafe_recipe.passk`, `correct` (the per-sample 0/1 list: `--log_samples` writes it, and
`leafe-compare` and Pass@k recomputations read it), `mean_turns` and
`invalid_action_rate` (pooled over environment steps, like `leafe_recipe.report`).

The `leafe-agent` model runs the episodes of interactive tasks (and of single-turn ones,
as one-turn episodes) with `leafe_recipe.rollout.run_episodes`: one batched generate call
per turn for every live episode. It generates with the project's own policy backends
(`leafe_recipe.policy`: transformers or vLLM) rather than lm-eval's `hf`/`vllm` wrappers:
those are the same transformers/vLLM calls, but the rollout needs completions as chat
messages in and token counts and truncation flags out, per-request vLLM seeds (n identical
prompts get different samples, a rerun repeats them), and exactly the prompts and
sampling of the `leafe` app, whose rollouts LEAFE trains on.
"""

from __future__ import annotations

import dataclasses
import json
import logging
import os
import sys
from collections.abc import Iterable, Sequence
from functools import lru_cache
from pathlib import Path
from typing import Any

import lm_eval.models  # noqa: F401  (registers lm-eval's own models first: see below)
from lm_eval.api.model import LM
from lm_eval.api.registry import register_model
from lm_eval.api.task import ConfigurableTask

from leafe_recipe import TASKS_DIR, shard
from leafe_recipe.envs.base import Task, env_config, get_family, known_families
from leafe_recipe.envs.code_data import DatasetUnavailable
from leafe_recipe.passk import ks_up_to, pass_at_k
from leafe_recipe.policy import Sampling, cut_at_stop
from leafe_recipe.manifest import MANIFEST
from leafe_recipe.prompts import with_playbook

log = logging.getLogger(__name__)

__all__ = [
    "AGENT_ONLY_KEY",
    "LeafeAgent",
    "LeafeEvalError",
    "LeafeTask",
    "cli",
    "evaluate_checkpoint",
    "leafe_dataset",
    "play_completions",
    "pooled_rate",
    "process_results",
    "success_rate",
    "summarize_results",
]

EPISODE_KEY = "leafe_episode"  # marks a response (or filtered response) that is an episode record
# Interactive tasks put this key in their generation_kwargs. leafe-agent consumes it; lm-eval's
# hf and vllm models pass it on to transformers' generate / vLLM's SamplingParams, which reject it
# on the first batch, so a run of an interactive task with the wrong model stops at once instead
# of after generating every sample.
AGENT_ONLY_KEY = "run_with_model_leafe_agent"
# Sampling settings that other libraries know and that are neutral here (the task YAMLs pin them,
# for lm-eval's hf model would otherwise take them from the checkpoint's generation_config).
_NEUTRAL_GEN_KWARGS = {"repetition_penalty": 1.0, "min_p": 0.0}


_UNSET = object()  # a model argument that was not given


class LeafeEvalError(RuntimeError):
    """A leafe task or the leafe-agent model was used in a way that cannot work; the message says how to fix it."""


# --------------------------------------------------------------------------- #
# Documents
# --------------------------------------------------------------------------- #

def leafe_dataset(leafe: dict[str, Any] | None = None, **metadata: Any):
    """lm-eval `custom_dataset`: a DatasetDict {"test": one document per problem}.

    lm-eval calls it with the task's `dataset_kwargs` and its `metadata` (the task YAML's
    `metadata:`, `--metadata` and `--model_args`, merged) as keyword arguments. What to
    load starts from the environment's own settings (hydra_conf/env/<env>.yaml, see
    `env_defaults`); the YAML's `dataset_kwargs: {leafe: {...}}` names the environment
    and what differs, in the same vocabulary:

        env:             the registered environment family (sokoban, codecontests, mbpp, ...)
        split:           the loader's split (test)
        n_test:          problems to load (null: all the split has)
        tasks:           keyword arguments of the family's task loader (path: a local file)
        kwargs:          keyword arguments of the environment (max_steps, max_turns, ...)
        history_window:  action/feedback pairs kept in the prompt (null: all)
        max_new_tokens:  generated tokens per action (the task's max_gen_toks)
        ks:              the k of Pass@k (null: 1, 2, 4, ... up to the samples per problem)
        repeats:         samples per problem (null: the task YAML's `repeats`)

    `--metadata '{"playbook": FILE}'` puts an ACE playbook (baselines/ace) in every prompt's
    system message, so any checkpoint can be evaluated with any playbook.
    `--metadata '{"shard": "i/N"}'` keeps every N-th problem from the i-th (leafe_recipe/shard.py),
    so N machines evaluate one task set and `leafe-merge samples` joins their logs.

    Overrides come from metadata (`--metadata '<json>'`, or a `metadata:` block in a task
    variant): `<env>: {...}` with any of the keys above (`tasks` and `kwargs` merge key by
    key), and the shortcut `<env>_path: FILE`, the same as `<env>: {tasks: {path: FILE}}`.
    A relative data path written in a task YAML resolves against that YAML's folder; one
    given with --metadata against the working directory; ~ and $VARS are expanded.
    """
    spec = task_spec(leafe, metadata)
    family = get_family(spec["env"])
    try:
        tasks = family.tasks(spec["split"], spec["n_test"], **spec["tasks"])
    except DatasetUnavailable as err:
        raise DatasetUnavailable(
            f"{err}\nWith lm-eval, give the data with --metadata '{{\"{spec['env']}_path\": \"/path/to/file\"}}' "
            "(see tasks/README.md)"
        ) from err
    if not tasks:
        raise LeafeEvalError(f"{spec['env']} split {spec['split']!r}: the loader returned no tasks")
    try:
        tasks = shard.take(tasks, metadata.get("shard"))
    except shard.ShardError as err:
        raise LeafeEvalError(f"metadata {err}") from None
    playbook = _playbook(metadata.get("playbook"))
    settings = json.dumps(
        {
            "env": spec["env"],
            "playbook": playbook,
            "kwargs": spec["kwargs"],
            "history_window": spec["history_window"],
            "history_window_source": spec["history_window_source"],
            "ks": spec["ks"],
            "interactive": _interactive(spec),
        },
        sort_keys=True,
    )
    from leafe_recipe.envs.pool import first_observations

    docs = []
    for task, first in zip(tasks, first_observations(family, spec["kwargs"], tasks)):
        docs.append(
            {
                "id": task.id,
                "env": task.env,
                "system": with_playbook(family.system_prompt, playbook),
                "prompt": first,
                "task": json.dumps(task.to_json(), sort_keys=True),
                "settings": settings,
            }
        )
    import datasets

    return datasets.DatasetDict({"test": datasets.Dataset.from_list(docs)})


def _playbook(path: str | None) -> str | None:
    """The text of an ACE playbook file given as `--metadata '{"playbook": FILE}'`."""
    if not path:
        return None
    file = Path(os.path.expandvars(os.path.expanduser(str(path))))
    if not file.is_file():
        raise LeafeEvalError(f"metadata playbook: {file} is not a file (an ACE playbook, e.g. <ace run>/playbook/final.md)")
    return file.read_text()


_SPEC_KEYS = {"env", "split", "n_test", "tasks", "kwargs", "history_window", "max_new_tokens", "ks", "repeats"}


def task_spec(leafe: dict[str, Any], metadata: dict[str, Any]) -> dict[str, Any]:
    """What a leafe task loads and plays: the environment's config (env_config), then the
    task YAML's `dataset_kwargs.leafe`, then `--metadata` (`<env>: {...}` and the shortcut
    `<env>_path`), each later one winning key by key (`tasks` and `kwargs` merge); the
    config's interpolations are resolved last, so an override reaches every setting that
    refers to it."""
    from omegaconf import OmegaConf

    if not isinstance(leafe, dict) or "env" not in leafe:
        raise LeafeEvalError("a leafe task needs `dataset_kwargs: {leafe: {env: <family>, ...}}` in its YAML")
    unknown = set(leafe) - _SPEC_KEYS
    if unknown:
        raise LeafeEvalError(f"unknown keys in dataset_kwargs.leafe: {sorted(unknown)}; valid: {sorted(_SPEC_KEYS)}")
    env = leafe["env"]
    layer = json.loads(json.dumps(leafe))
    if (layer.get("tasks") or {}).get("path"):
        layer["tasks"]["path"] = _yaml_path(layer["tasks"]["path"], metadata.get("config_source"))
    override = metadata.get(env) or {}
    if not isinstance(override, dict):
        raise LeafeEvalError(f"metadata {env!r} must be a mapping of {sorted(_SPEC_KEYS - {'env'})}, got {override!r}")
    unknown = set(override) - (_SPEC_KEYS - {"env"})
    if unknown:
        raise LeafeEvalError(f"unknown keys in metadata {env!r}: {sorted(unknown)}; valid: {sorted(_SPEC_KEYS - {'env'})}")
    override = json.loads(json.dumps(override))
    if metadata.get(f"{env}_path"):
        override.setdefault("tasks", {})["path"] = metadata[f"{env}_path"]
    if (override.get("tasks") or {}).get("path"):
        override["tasks"]["path"] = str(Path(os.path.expandvars(os.path.expanduser(str(override["tasks"]["path"])))).absolute())
    defaults = OmegaConf.create({"split": "test", "ks": None, "repeats": None})
    if (config := env_config(env)) is None:
        raise LeafeEvalError(f"no environment config hydra_conf/env/{env}.yaml; environments: {', '.join(known_families())}")
    conf = OmegaConf.to_container(OmegaConf.merge(defaults, config, layer, override), resolve=True)
    spec = {key: conf.get(key) for key in _SPEC_KEYS}
    spec["tasks"], spec["kwargs"] = dict(spec["tasks"] or {}), dict(spec["kwargs"] or {})
    spec["history_window_source"] = "metadata" if "history_window" in override else "task"
    if spec["ks"] is not None:
        spec["ks"] = [int(k) for k in spec["ks"]]
        if not spec["ks"] or min(spec["ks"]) < 1:
            raise LeafeEvalError(f"ks must be a non-empty list of k >= 1, got {spec['ks']}")
    return spec


def _interactive(spec: dict[str, Any]) -> bool:
    return spec["kwargs"].get("max_turns") != 1


class LeafeTask(ConfigurableTask):
    """Every leafe task's class (tasks/_leafe_template_yaml): before lm-eval builds the task,
    it completes the YAML from the environment's settings, so that they are written once.
    The generation length is the environment's `max_new_tokens` (unless the YAML sets
    `max_gen_toks`), an interactive environment's task asks for the `leafe-agent` model
    (AGENT_ONLY_KEY), and an environment that runs model-written code marks the task
    `unsafe_code`."""

    def __init__(self, config: dict[str, Any] | None = None, **kwargs: Any) -> None:
        config = dict(config or {})
        config.pop("class", None)
        spec = task_spec((config.get("dataset_kwargs") or {}).get("leafe"), dict(config.get("metadata") or {}))
        generation = dict(config.get("generation_kwargs") or {})
        generation.setdefault("max_gen_toks", spec["max_new_tokens"])
        if spec["repeats"] is not None:
            config["repeats"] = int(spec["repeats"])
        if _interactive(spec):
            generation[AGENT_ONLY_KEY] = True
        config["generation_kwargs"] = generation
        if get_family(spec["env"]).runs_code:
            config.setdefault("unsafe_code", True)
        super().__init__(config=config, **kwargs)


def _yaml_path(path: str, config_source: str | None) -> str:
    """A data path written in a task YAML: absolute, ~ or $VAR, or relative to the YAML's folder."""
    text = os.path.expandvars(os.path.expanduser(str(path)))
    if os.path.isabs(text):
        return text
    if config_source and config_source != "inline" and Path(config_source).is_file():
        return str((Path(config_source).parent / text).resolve())
    raise LeafeEvalError(
        f"the data path {path!r} in a task config is relative, and lm-eval does not say where that config lives "
        "(a task passed by its YAML path on the command line is loaded 'inline'). Use an absolute path "
        "(~ and $VARS are expanded), load the task by name with --include_path, or give the path with "
        "--metadata (relative to the working directory there)"
    )


def _settings(doc: dict[str, Any]) -> dict[str, Any]:
    return json.loads(doc["settings"])


def _is_leafe_doc(doc: Any) -> bool:
    return isinstance(doc, dict) and "settings" in doc and "task" in doc and "env" in doc


@lru_cache(maxsize=4096)
def _task(task_json: str) -> Task:
    return Task.from_json(json.loads(task_json))


# --------------------------------------------------------------------------- #
# Filter, metrics, aggregations
# --------------------------------------------------------------------------- #


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


# --------------------------------------------------------------------------- #
# The leafe-agent model
# --------------------------------------------------------------------------- #


def sampling_from_gen_kwargs(gen_kwargs: dict[str, Any], seed: int) -> Sampling:
    """Sampling from lm-eval generation kwargs, with lm-eval's conventions: temperature 0 (or
    do_sample false) is greedy; max_gen_toks (or max_new_tokens, max_tokens) caps the tokens;
    `until` are stop strings. top_k 0 or unset = off, as in the task YAMLs."""
    kw = dict(gen_kwargs or {})
    kw.pop(AGENT_ONLY_KEY, None)
    until = kw.pop("until", None) or []
    until = [until] if isinstance(until, str) else list(until)
    max_new = None
    for key in ("max_gen_toks", "max_new_tokens", "max_tokens", "max_completion_tokens"):
        value = kw.pop(key, None)
        if max_new is None and value is not None:
            max_new = int(value)
    do_sample = kw.pop("do_sample", None)
    temperature = float(kw.pop("temperature", 0.0))
    if do_sample is False:
        temperature = 0.0
    top_p = float(kw.pop("top_p", 1.0))
    top_k = int(kw.pop("top_k", 0) or 0)
    seed = int(kw.pop("seed", seed))
    for key, neutral in _NEUTRAL_GEN_KWARGS.items():
        if key in kw and float(kw.pop(key)) != neutral:
            raise LeafeEvalError(f"leafe-agent samples with temperature, top_p and top_k only; {key} must be {neutral}")
    if kw:
        raise LeafeEvalError(
            f"leafe-agent does not support the generation kwargs {sorted(kw)}; it supports temperature, top_p, top_k, "
            "max_gen_toks, until, do_sample and seed"
        )
    return Sampling(
        temperature=temperature,
        top_p=top_p,
        top_k=top_k,
        max_new_tokens=max_new or 256,
        seed=seed,
        stop=tuple(until),
    )


# lm-eval 0.4.13 registers its built-in models (hf, vllm, ...) only when get_model finds the
# registry empty; registering leafe-agent into an empty registry would hide them, hence the
# `import lm_eval.models` above.
@register_model("leafe-agent")
class LeafeAgent(LM):
    """lm-eval model that plays leafe tasks' episodes in their environments, lock-step.

    model_args: pretrained (a checkpoint directory, hub id or `tiny`), backend (hf or
    vllm), seed (sampling seed, default 0), history_window (action/feedback pairs kept in
    the prompt; default: the window the checkpoint was trained with, from its
    leafe_manifest.json, else the task's; a `--metadata` override of the task's window wins
    over the checkpoint's), max_concurrent (live episodes, default 256),
    env_workers (threads stepping environments; default: the cores); backend options as in
    hydra_conf/backend: device, dtype, max_batch_size, attn_implementation (hf),
    tensor_parallel_size, gpu_memory_utilization, max_model_len and any other vllm.LLM
    keyword (vllm). lm-eval's --batch_size is ignored: every live episode is in each call.

    Requests of leafe tasks become episodes; any other generate_until request is one chat
    turn (the context as the user message, or the messages of --apply_chat_template).
    """

    def __init__(
        self,
        pretrained: str,
        backend: str = "hf",
        seed: int | None = None,
        max_concurrent: int | None = None,
        env_workers: int | None = None,
        batch_size: Any = None,  # lm-eval passes it; every live episode is batched anyway
        trust_remote_code: bool | None = None,
        history_window: Any = _UNSET,
        **backend_args: Any,
    ) -> None:
        """Settings not given come from where the app takes them: the backend's hydra_conf/backend/<name>.yaml,
        and hydra_conf/config.yaml for seed and max_concurrent."""
        super().__init__()
        from leafe_recipe import models
        from leafe_recipe.context import app_defaults, backend_settings, make_policy

        if backend not in ("hf", "vllm"):
            raise LeafeEvalError(f"leafe-agent: backend must be hf or vllm, got {backend!r}")
        settings = backend_settings(backend)
        for key, value in backend_args.items():
            if value is None or (key in ("device", "max_batch_size") and key not in settings):
                continue  # lm-eval passes its own --device and --max_batch_size, unset or for another backend
            if key not in settings and backend == "hf":
                raise LeafeEvalError(f"leafe-agent: unknown model_args for backend=hf: {key!r}; valid: {sorted(set(settings) - {'name'})}")
            if key not in settings:  # any other vllm.LLM keyword
                settings["extra"] = {**(settings.get("extra") or {}), key: value}
            else:  # model_args arrive as text from the command line: typed as the YAML's value
                default = settings[key]
                settings[key] = type(default)(value) if isinstance(default, (bool, int, float)) and isinstance(value, str) else value
        if trust_remote_code and backend == "vllm":
            settings["extra"] = {**(settings.get("extra") or {}), "trust_remote_code": True}
        device = str(settings.get("device") or "")
        if backend == "hf" and device.startswith("cuda"):
            import torch

            if not torch.cuda.is_available():  # lm-eval passes --device (default cuda:0) as is
                log.info("leafe-agent: device %s requested but CUDA is not available; using the CPU", device)
                settings["device"] = "auto"
        app = app_defaults()
        path = models.resolve(str(pretrained))
        seed = app.seed if seed is None else seed
        max_concurrent = app.max_concurrent if max_concurrent is None else max_concurrent
        self._setup(make_policy(path, settings), str(pretrained), backend, seed, max_concurrent, env_workers)
        manifest = models.manifest_of(path)
        self._set_window(history_window, manifest.prompt if manifest is not None else None)

    @classmethod
    def from_policy(
        cls,
        policy: Any,
        name: str = "policy",
        seed: int = 0,
        max_concurrent: int = 256,
        env_workers: int | None = None,
        history_window: Any = _UNSET,
    ) -> "LeafeAgent":
        """Wrap an already loaded `leafe_recipe.policy` backend (anything with its `generate`);
        `history_window` as the model argument (else the tasks' windows)."""
        agent = cls.__new__(cls)
        LM.__init__(agent)
        agent._setup(policy, name, "custom", seed, max_concurrent, env_workers)
        agent._set_window(history_window, None)
        return agent

    def _setup(self, policy: Any, name: str, backend: str, seed: int, max_concurrent: int, env_workers: int | None) -> None:
        self.policy = policy
        self.pretrained = name
        self.backend = backend
        self.seed = int(seed)
        self.max_concurrent = int(max_concurrent)
        self.env_workers = int(env_workers) if env_workers else (os.cpu_count() or 1)

    def _set_window(self, history_window: Any, prompt_settings: dict[str, Any] | None) -> None:
        if history_window is not _UNSET and isinstance(history_window, str):  # from --model_args text
            history_window = None if history_window.lower() in ("none", "null", "all") else int(history_window)
        self.explicit_window = history_window
        self.prompt_settings = prompt_settings

    def window_for(self, settings: dict[str, Any]) -> tuple[int | None, str]:
        """The history window for a task's episodes, and where it came from."""
        if self.explicit_window is not _UNSET:
            return self.explicit_window, "model_args"
        if settings.get("history_window_source") == "metadata":
            return settings["history_window"], "metadata"
        if self.prompt_settings is not None:
            return self.prompt_settings.get("history_window"), f"checkpoint {MANIFEST}"
        return settings["history_window"], "task"

    # -- lm-eval's model interface ------------------------------------------------------

    @property
    def tokenizer(self):
        if self.backend == "vllm":
            return self.policy.llm.get_tokenizer()
        return getattr(self.policy, "tokenizer", None)

    @property
    def tokenizer_name(self) -> str:
        return self.pretrained.replace("/", "__")

    def chat_template(self, chat_template: bool | str = False) -> str | None:
        return getattr(self.tokenizer, "chat_template", None) if self.tokenizer is not None else None

    def apply_chat_template(self, chat_history: list[dict[str, str]], add_generation_prompt: bool = True) -> str:
        """The messages as JSON; generate_until applies the tokenizer's template to them."""
        return json.dumps(chat_history)

    def get_model_info(self) -> dict[str, Any]:
        return {
            "leafe_agent_backend": self.backend,
            "leafe_agent_seed": self.seed,
            "leafe_agent_prompt_settings": self.prompt_settings,
        }

    def loglikelihood(self, requests, disable_tqdm: bool = False):
        raise NotImplementedError("leafe-agent only generates; run loglikelihood tasks with --model hf or vllm")

    def loglikelihood_rolling(self, requests, disable_tqdm: bool = False):
        raise NotImplementedError("leafe-agent only generates; run loglikelihood tasks with --model hf or vllm")

    def generate_until(self, requests, disable_tqdm: bool = False) -> list[str]:
        from tqdm import tqdm

        from leafe_recipe.rollout import run_episodes

        out: list[str | None] = [None] * len(requests)
        groups: dict[tuple[str, Sampling], list[tuple[int, Task]]] = {}
        plain: list[int] = []
        repeat: dict[tuple, int] = {}  # a doc's requests come `repeats` times: the k-th is its k-th sample
        for i, req in enumerate(requests):
            gen_kwargs = req.args[1]
            if _is_leafe_doc(req.doc):
                settings = req.doc["settings"]
                ks = json.loads(settings).get("ks")
                if ks and req.repeats is not None:
                    _check_ks(ks, int(req.repeats), f"task {req.task_name}")
                key = (settings, sampling_from_gen_kwargs(gen_kwargs, self.seed))
                task = _task(req.doc["task"])
                count = (req.task_name, task.id)
                repeat[(task.id, i)] = repeat.get(count, 0)
                repeat[count] = repeat[(task.id, i)] + 1
                groups.setdefault(key, []).append((i, task))
            else:
                plain.append(i)
        bar = tqdm(total=len(requests), disable=disable_tqdm or self.rank != 0, desc="leafe-agent episodes")
        for (settings_json, sampling), items in groups.items():
            settings = json.loads(settings_json)
            family = get_family(settings["env"])
            if settings.get("playbook"):  # ACE: the frozen playbook in the system prompt
                family = dataclasses.replace(family, system_prompt=with_playbook(family.system_prompt, settings["playbook"]))
            window, source = self.window_for(settings)
            log.info("leafe-agent: %s episodes with history window %s (from the %s)", settings["env"], window, source)
            position, starts = {}, []
            for i, task in items:  # a sample is seeded by the task and its repeat index, not by its place in the batch
                k = repeat[(task.id, i)]
                position[(task.id, k)] = i
                starts.append((task, k))
            for ep in run_episodes(
                starts,
                family,
                settings["kwargs"],
                self.policy,
                sampling,
                history_window=window,
                max_concurrent=self.max_concurrent,
                env_workers=self.env_workers,
            ):
                out[position[(ep.task.id, ep.sample)]] = _episode_json(
                    ep.success,
                    len(ep.actions),
                    ep.invalid_actions,
                    ep.observations[-1],
                    gen_tokens=ep.gen_tokens,
                    truncated_outputs=ep.truncated_outputs,
                    history_window=window,
                    history_window_source=source,
                    actions=ep.actions,
                )
                bar.update(1)
        if plain:
            conversations = [_messages(requests[i].args[0]) for i in plain]
            samplings = []
            for i in plain:  # seeded by the request's document and its repeat index
                count = (requests[i].task_name, requests[i].doc_id)
                repeat[count] = repeat.get(count, -1) + 1
                samplings.append(sampling_from_gen_kwargs(requests[i].args[1], self.seed).for_request(*count, repeat[count]))
            for i, completion, s in zip(plain, self.policy.generate(conversations, samplings), samplings):
                out[i] = cut_at_stop(completion.text, s.stop)[0]
                bar.update(1)
        bar.close()
        return out  # type: ignore[return-value]


def _messages(context: str) -> list[dict[str, str]]:
    """A request's context as chat messages: the JSON of apply_chat_template, else one user turn."""
    if context.startswith("["):
        try:
            messages = json.loads(context)
            if isinstance(messages, list) and all(isinstance(m, dict) and "role" in m for m in messages):
                return messages
        except json.JSONDecodeError:
            pass
    return [{"role": "user", "content": context}]


# --------------------------------------------------------------------------- #
# One code path for the pipeline and the command line
# --------------------------------------------------------------------------- #


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

    from leafe_recipe import models

    path = models.resolve(str(model_path)) if policy is None else str(model_path)
    lm: Any = model
    if model == "leafe-agent":
        args = {"pretrained": path, "backend": backend, "seed": seed, **(model_args or {})}
        if policy is not None:
            extra = {k: v for k, v in (model_args or {}).items() if k in ("max_concurrent", "env_workers", "history_window")}
            lm, args = LeafeAgent.from_policy(policy, name=path, seed=seed, **extra), None
    elif model in ("hf", "vllm") and policy is None:
        args = {"pretrained": path, **(model_args or {})}
        if model == "hf":
            args = hf_attention(args, args.get("device"))
    else:
        raise LeafeEvalError(f"model must be leafe-agent, hf or vllm (a policy needs leafe-agent), got {model!r}")
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
        model=lm,
        model_args=args,
        tasks=roots,
        limit=limit,
        gen_kwargs=gen_kwargs,
        task_manager=manager,
        log_samples=log_samples,
        evaluation_tracker=tracker,
        apply_chat_template=model != "leafe-agent",
        confirm_run_unsafe_code=True,
        random_seed=seed,
        numpy_random_seed=seed,
        torch_random_seed=seed,
    )
    samples = results.pop("samples", None) if results else None
    written = None
    if tracker is not None and results is not None:
        tracker.save_results_aggregated(results=results, samples=samples)
        if log_samples and samples:
            for name in results["configs"]:
                tracker.save_results_samples(task_name=name, samples=samples[name])
        written = str(Path(output_path) / tracker.general_config_tracker.model_name_sanitized)
    return {"tasks": summarize_results(results or {}), "results": results, "output_path": written}


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


if __name__ == "__main__":
    if sys.argv[1:] == ["--tasks-dir"]:
        print(TASKS_DIR)
    else:
        cli()
