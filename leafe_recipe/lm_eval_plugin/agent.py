"""The `leafe-agent` lm-eval model: it plays leafe tasks' episodes in their environments,
lock-step, with the project's own policy backends (every live episode in one generate call per
turn, each sample seeded by its task and repeat index)."""

from __future__ import annotations

import dataclasses
import json
import logging
import os
from typing import Any

import lm_eval.models  # noqa: F401  (registers lm-eval's own models first: see below)
from lm_eval.api.model import LM
from lm_eval.api.registry import register_model

from leafe_recipe.envs.base import Task, get_family
from leafe_recipe.lm_eval_plugin.metrics import _check_ks, _episode_json
from leafe_recipe.lm_eval_plugin.tasks import AGENT_ONLY_KEY, LeafeEvalError, _NEUTRAL_GEN_KWARGS, _is_leafe_doc, _task
from leafe_recipe.manifest import MANIFEST
from leafe_recipe.policy import Sampling, cut_at_stop
from leafe_recipe.prompts import with_playbook

log = logging.getLogger(__name__)

_UNSET = object()  # a model argument that was not given


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
