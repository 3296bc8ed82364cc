"""The leafe tasks' documents: what a task loads and plays (its spec, from the environment's
config, the task YAML and `--metadata`), one document per problem, and the task class that
completes a task YAML from the environment's settings."""

from __future__ import annotations

import json
import os
from functools import lru_cache
from pathlib import Path
from typing import Any

from lm_eval.api.task import ConfigurableTask

from leafe_recipe import shard
from leafe_recipe.envs.base import Task, env_config, get_family, known_families
from leafe_recipe.envs.code_data import DatasetUnavailable
from leafe_recipe.prompts import with_playbook

EPISODE_KEY = "leafe_episode"  # marks a response (or filtered response) that is an episode record
# Interactive tasks put this key in their generation_kwargs. leafe-agent consumes it; lm-eval's
# hf and vllm models pass it on to transformers' generate / vLLM's SamplingParams, which reject it
# on the first batch, so a run of an interactive task with the wrong model stops at once instead
# of after generating every sample.
AGENT_ONLY_KEY = "run_with_model_leafe_agent"
# Sampling settings that other libraries know and that are neutral here (the task YAMLs pin them,
# for lm-eval's hf model would otherwise take them from the checkpoint's generation_config).
_NEUTRAL_GEN_KWARGS = {"repetition_penalty": 1.0, "min_p": 0.0}


class LeafeEvalError(RuntimeError):
    """A leafe task or the leafe-agent model was used in a way that cannot work; the message says how to fix it."""


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
