"""The OpenRLHF multi-turn agent of GRPO on GPUs (`--train.agent_func_path`).

OpenRLHF 0.11.2 loads the agent file in every vLLM rollout actor, takes its class
`AgentExecutor` (a subclass of `openrlhf.utils.agent.AgentExecutorBase`), builds it with no
arguments and awaits `execute(prompt, label, sampling_params, max_length, hf_tokenizer,
llm_engine)` once per sample, which plays a whole episode and returns the token sequence,
the action ranges (the loss covers those tokens only), the reward and logs. The run writes
a two-line agent file that calls `make_executor(<settings JSON>)`.

The executor is this project's rather than OpenRLHF's `MultiTurnAgentExecutor`, which
concatenates raw feedback text with no chat template and no history rule: here the
sequence is built by `turns.ChatTurns`, so every step's prompt is the evaluation prompt
token for token (whole history, the tokenizer's chat template). The reward of an episode
is the environment's (success 1.0) minus `invalid_penalty` per invalid action, as
verl-agent's multi-turn GRPO.
"""

from __future__ import annotations

import asyncio
import json
from copy import deepcopy
from pathlib import Path
from typing import Any

from baselines.grpo.turns import ChatTurns
from leafe_recipe.envs.base import Task, get_family
from leafe_recipe.envs.pool import EnvPool


def agent_file(settings: Path) -> str:
    """The text of the agent file OpenRLHF loads, for the settings written at `settings`."""
    return (
        "# The OpenRLHF agent of this GRPO run (baselines/grpo/agent.py), with its settings beside it.\n"
        "from baselines.grpo.agent import make_executor\n\n"
        f"AgentExecutor = make_executor({str(settings)!r})\n"
    )


def make_executor(settings_path: str) -> type:
    """An `AgentExecutor` class for OpenRLHF, playing episodes with the settings in the JSON
    file: env (family name), env_kwargs, max_new_tokens (per action), invalid_penalty."""
    from openrlhf.utils.agent import AgentExecutorBase

    settings = json.loads(Path(settings_path).read_text())

    class AgentExecutor(AgentExecutorBase):
        async def execute(self, prompt, label, sampling_params, max_length: int, hf_tokenizer, llm_engine, images=None):
            return await play(settings, label, sampling_params, max_length, hf_tokenizer, llm_engine, prompt)

    return AgentExecutor


async def play(settings: dict[str, Any], label: str, sampling_params, max_length: int, tokenizer, engine, prompt: str = "") -> dict[str, Any]:
    """One episode of the task in `label` (its JSON), in OpenRLHF's result format."""
    family = get_family(settings["env"])
    task = Task.from_json(json.loads(label))
    pool = _POOLS.setdefault(json.dumps([settings["env"], settings["env_kwargs"]], sort_keys=True), EnvPool(family, settings["env_kwargs"]))
    while (env := pool.acquire()) is None:  # the family caps its live simulators: wait for one
        await asyncio.sleep(0.05)
    try:
        return await _play(env, family, task, settings, label, sampling_params, max_length, tokenizer, engine, prompt)
    finally:
        pool.release(env)


_POOLS: dict[str, EnvPool] = {}  # per rollout actor process: its environments, reused across episodes


async def _play(env, family, task: Task, settings, label, sampling_params, max_length, tokenizer, engine, prompt) -> dict[str, Any]:
    observations = [await asyncio.to_thread(env.reset, task)]
    actions: list[str] = []
    turns = ChatTurns(tokenizer, family.system_prompt)
    ids = turns.first(observations[0])
    logprobs = [0.0] * len(ids) if sampling_params.logprobs is not None else None
    ranges, reward, truncated, invalid, success = [], 0.0, False, 0, False
    while (room := max_length - len(ids)) > 0:
        params = deepcopy(sampling_params)
        params.max_tokens = min(room, settings["max_new_tokens"])
        out = (await engine.generate(ids, params)).outputs[0]
        action_ids = list(out.token_ids)
        truncated = out.finish_reason == "length"
        text = tokenizer.decode(action_ids, skip_special_tokens=True)
        ranges.append((len(ids), len(ids) + len(action_ids)))
        ids += action_ids
        if logprobs is not None:
            logprobs += [choices[token].logprob for choices, token in zip(out.logprobs, action_ids)]
        step = await asyncio.to_thread(env.step, text)
        observations.append(step.observation)
        actions.append(text)
        invalid += bool(step.info.get("invalid"))
        reward += step.reward - settings["invalid_penalty"] * bool(step.info.get("invalid"))
        if step.done:
            success = step.success
            break
        feedback = turns.feedback(observations, actions, action_ids)
        ids += feedback
        if logprobs is not None:
            logprobs += [0.0] * len(feedback)
    return {
        "prompt": prompt,
        "label": label,
        "images": None,
        "mm_train_inputs": None,
        "reward": reward,
        "scores": reward,
        "observation_tokens": ids,
        "action_ranges": ranges,
        "rollout_log_probs": logprobs,
        "truncated": truncated,
        "extra_logs": {"success": float(success), "env_steps": float(len(actions)), "invalid_actions": float(invalid)},
    }
