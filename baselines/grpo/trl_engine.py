"""GRPO without GPUs: TRL's `GRPOTrainer` with a multi-turn `rollout_func`, configured to the
objective of the OpenRLHF engine.

Objective, matched to OpenRLHF's `--algo.advantage.estimator group_norm --algo.kl.use_loss
--algo.kl.estimator k3`: `scale_rewards="group"` (rewards normalised by the group's mean and
standard deviation), `loss_type="dapo"` (token-level mean over the batch), `beta` = the KL
coefficient (TRL's per-token KL is the k3 estimator). One sequence per episode, built by
`turns.ChatTurns` exactly as the OpenRLHF agent builds it (whole history, chat template),
with `env_mask` 0 on the environment's tokens so that the loss covers the actions only.

TRL repeats every prompt `num_generations` times before calling `rollout_func` (with the
prompts of a whole generation batch), which returns one episode per prompt it receives. The
episodes of a call are played in lock-step: one `generate` per turn for all live episodes,
with the model being trained (TRL with `beta > 0` loads the reference model from the model
path, which must be a directory: `tiny` is resolved to one).
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch

from baselines.grpo.turns import ChatTurns
from leafe_recipe import tracking
from leafe_recipe.envs.base import EnvFamily, Task
from leafe_recipe.envs.pool import EnvPool, first_observations
from leafe_recipe.gpu import choose_attention
from leafe_recipe.prompts import build_messages


DTYPE = "float32"  # the policy's and the reference model's weights (TRL's default, named because the attention choice reads it)


@dataclass
class Episode:
    task: Task
    env: Any
    observations: list[str]
    actions: list[str] = field(default_factory=list)
    ids: list[int] = field(default_factory=list)
    prompt_len: int = 0
    mask: list[int] = field(default_factory=list)  # over the completion: 1 = action token
    logprobs: list[float] = field(default_factory=list)
    reward: float = 0.0
    invalid: int = 0
    success: bool = False


@torch.no_grad()
def play(model, tokenizer, family: EnvFamily, env_kwargs: dict[str, Any], tasks: list[Task], g: dict[str, Any], ledger: dict[str, int]) -> list[Episode]:
    """Play one episode per task, lock-step, sampling from `model`; returns them in task order."""
    with EnvPool(family, env_kwargs) as pool:  # in waves where the family caps its live environments
        wave = pool.capacity or len(tasks)
        return [e for i in range(0, len(tasks), wave) for e in _play(pool, model, tokenizer, family, tasks[i : i + wave], g, ledger)]


def _play(pool: EnvPool, model, tokenizer, family: EnvFamily, tasks: list[Task], g: dict[str, Any], ledger: dict[str, int]) -> list[Episode]:
    turns = ChatTurns(tokenizer, family.system_prompt)
    episodes = []
    for task in tasks:
        env = pool.acquire()
        episode = Episode(task, env, [env.reset(task)])
        episode.ids = turns.first(episode.observations[0])
        episode.prompt_len = len(episode.ids)
        episodes.append(episode)
    live = list(episodes)
    eos = {tokenizer.eos_token_id}
    was_training = model.training
    model.eval()
    while live:
        live = [e for e in live if len(e.ids) < g["max_length"]]  # the rest are cut off at the length limit
        if not live:
            break
        room = min(g["max_length"] - len(e.ids) for e in live)
        width = max(len(e.ids) for e in live)
        pad = tokenizer.pad_token_id
        input_ids = torch.tensor([[pad] * (width - len(e.ids)) + e.ids for e in live], device=model.device)
        attention = torch.tensor([[0] * (width - len(e.ids)) + [1] * len(e.ids) for e in live], device=model.device)
        out = model.generate(
            input_ids=input_ids, attention_mask=attention, max_new_tokens=min(room, g["max_new_tokens"]), do_sample=True,
            temperature=g["temperature"], top_p=1.0, top_k=0, pad_token_id=pad, eos_token_id=tokenizer.eos_token_id,
            output_scores=True, return_dict_in_generate=True,
        )  # fmt: skip
        new = out.sequences[:, width:].tolist()
        scores = torch.stack(out.scores, dim=1).log_softmax(-1)  # the sampling distribution's log-probabilities
        ledger["model_calls"] += len(live)
        still = []
        for row, episode in enumerate(live):
            tokens = new[row]
            end = next((i + 1 for i, t in enumerate(tokens) if t in eos), len(tokens))
            tokens = tokens[:end]
            ledger["gen_tokens"] += len(tokens)
            text = tokenizer.decode(tokens, skip_special_tokens=True)
            episode.ids += tokens
            episode.mask += [1] * len(tokens)
            episode.logprobs += scores[row, torch.arange(len(tokens)), torch.tensor(tokens)].tolist()
            step = episode.env.step(text)
            ledger["env_steps"] += 1
            episode.observations.append(step.observation)
            episode.actions.append(text)
            episode.invalid += bool(step.info.get("invalid"))
            episode.reward += step.reward - g["invalid_penalty"] * bool(step.info.get("invalid"))
            if step.done or len(episode.ids) >= g["max_length"]:
                episode.success = step.success
                continue
            feedback = turns.feedback(episode.observations, episode.actions, tokens)
            episode.ids += feedback
            episode.mask += [0] * len(feedback)
            episode.logprobs += [0.0] * len(feedback)
            still.append(episode)
        live = still
    model.train(was_training)
    for episode in episodes:
        pool.release(episode.env)
    return episodes


def train(
    g: dict[str, Any], init: str, family: EnvFamily, env_kwargs: dict[str, Any], tasks: list[Task], out_dir: Path, ledger: dict[str, int]
) -> Path:
    """GRPO with TRL on `tasks`; the trained model is saved to out_dir (a HF checkpoint)."""
    from datasets import Dataset
    from transformers import AutoTokenizer
    from trl import GRPOConfig, GRPOTrainer

    tokenizer = AutoTokenizer.from_pretrained(init)
    tokenizer.padding_side = "left"
    if tokenizer.pad_token is None:
        tokenizer.pad_token = tokenizer.eos_token
    prompts: dict[str, Task] = {}
    rows = []
    for task, first in zip(tasks, first_observations(family, env_kwargs, tasks)):
        prompt = build_messages(family.system_prompt, [first], [], None)
        prompts[json.dumps(prompt)] = task
        rows.append({"prompt": prompt})

    def rollout(batch: list, trainer) -> dict[str, list]:
        model = trainer.accelerator.unwrap_model(trainer.model)
        episodes = play(model, tokenizer, family, env_kwargs, [prompts[json.dumps(p)] for p in batch], g, ledger)
        ledger["episodes"] += len(episodes)
        ledger["successes"] += sum(e.success for e in episodes)
        return {
            "prompt_ids": [e.ids[: e.prompt_len] for e in episodes],
            "completion_ids": [e.ids[e.prompt_len :] for e in episodes],
            "logprobs": [e.logprobs for e in episodes],
            "env_mask": [e.mask for e in episodes],
            "env_reward": [e.reward for e in episodes],
        }

    def reward(completions, env_reward, **_) -> list[float]:
        return list(env_reward)

    on_gpu = torch.cuda.is_available()
    config = GRPOConfig(
        output_dir=str(out_dir / "trl"),
        use_cpu=not on_gpu,
        bf16=False,
        model_init_kwargs={"dtype": DTYPE, "attn_implementation": choose_attention(None, on_gpu, DTYPE, "TRL GRPO")},
        num_generations=g["group_size"],
        per_device_train_batch_size=g["group_size"],
        gradient_accumulation_steps=g["prompts_per_step"],
        num_train_epochs=g["passes"],
        learning_rate=g["learning_rate"],
        beta=g["kl_coef"],
        loss_type="dapo",
        scale_rewards="group",
        temperature=g["temperature"],
        top_k=0,
        max_completion_length=g["max_length"],
        seed=g["seed"],
        logging_steps=1,
        save_strategy="no",
        report_to=tracking.trl_report_to(),
        remove_unused_columns=False,
        disable_dropout=True,
    )
    trainer = GRPOTrainer(
        model=init, reward_funcs=reward, args=config, train_dataset=Dataset.from_list(rows), processing_class=tokenizer,
        rollout_func=rollout,
    )  # fmt: skip
    trainer.train()
    out_dir.mkdir(parents=True, exist_ok=True)
    trainer.save_model(str(out_dir))
    tokenizer.save_pretrained(str(out_dir))
    (out_dir / "trainer_log.json").write_text(json.dumps(trainer.state.log_history, indent=2))
    ledger["gradient_steps"] = trainer.state.global_step
    return out_dir
