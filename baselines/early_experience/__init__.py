"""method=early_experience: "Agent Learning via Early Experience" (Zhang et al. 2025), the
reward-free baseline that learns from the outcomes of the agent's own alternative actions.

At the states along expert trajectories (`EnvFamily.expert`, played on the train tasks), K
alternatives to the expert's action are executed (`alternatives`): the environment's valid
actions where it lists them (the paper's ALFWorld and ScienceWorld world modelling samples
them uniformly), else samples from the policy (its WebShop recipe and its self-reflection).
Reaching a state means resetting the environment and replaying the expert's prefix, so each
alternative costs that replay plus its own step; a task stops adding alternatives when the
interaction budget (`budget`, environment steps per task) is spent. Then one of the two
variants (`method.variant`):

- `iwm`, Implicit World Modeling (`world_model.py`): predict the next observation given the
  state and an action (alternatives and the expert's own), one epoch, then imitation of the
  expert from that checkpoint;
- `sr`, Self-Reflection (`self_reflection.py`): the policy explains why the expert's action
  beats the alternatives it saw fail; the rationale followed by the expert's answer is the
  target, mixed with the expert data.

Both train with the same OpenRLHF SFT launch as LEAFE and imitation (`method.sft`, shared
with method=imitation) and are evaluated like every method.
"""

from __future__ import annotations

import random
import time
from dataclasses import dataclass, field
from typing import Any

from baselines.imitation import expert_records, expert_trajectories
from leafe_recipe.context import RunContext
from leafe_recipe.envs.base import EnvFamily, ReplayDivergence, Task, replay
from leafe_recipe.envs.pool import EnvPool
from leafe_recipe.evaluate import evaluate
from leafe_recipe.policy import Policy, Sampling
from leafe_recipe.prompts import build_messages
from leafe_recipe.records import write_jsonl

VARIANTS = ("iwm", "sr")
SOURCES = ("auto", "valid", "policy")


@dataclass
class State:
    """An expert state: the task, the expert's trajectory, and the step it is before."""

    task: Task
    observations: list[str]
    actions: list[str]
    i: int  # expert actions taken before this state (0: the first observation)
    alternatives: list[tuple[str, str]] = field(default_factory=list)  # (action, the observation it led to)

    @property
    def expert(self) -> tuple[str, str]:
        return self.actions[self.i], self.observations[self.i + 1]


@dataclass
class Ledger:
    tasks: int = 0
    env_steps: int = 0  # the alternatives' own steps
    replay_steps: int = 0  # steps replayed to reach the expert states
    model_calls: int = 0
    gen_tokens: int = 0
    expert_steps: int = 0
    replay_divergences: int = 0
    states: int = 0
    alternatives: int = 0


def expert_states(trajectories) -> list[State]:
    return [State(task, obs, acts, i) for task, obs, acts in trajectories for i in range(len(acts))]


def alternatives(
    states: list[State],
    family: EnvFamily,
    env_kwargs: dict[str, Any],
    k: int,
    source: str,
    budget: int,
    load_policy,
    sampling: Sampling,
    window: int | None,
    seed: int,
    ledger: Ledger,
) -> None:
    """Fill each state's `alternatives` with up to k (action, next observation) pairs that differ
    from the expert's action, within `budget` environment steps (replays included) per task.

    Candidates: the environment's valid actions at the state, shuffled (`valid`), or the
    policy's samples, unparseable and duplicate ones topped up with valid actions where the
    environment lists them (`policy`); `auto` is `valid` where it lists them."""
    if source not in SOURCES:
        raise ValueError(f"method.alternatives={source!r}: use one of {', '.join(SOURCES)}")
    use_valid = source == "valid" or (source == "auto" and family.valid_actions is not None)
    if use_valid and family.valid_actions is None:
        raise ValueError("method.alternatives=valid: this environment does not list its valid actions; use policy")
    same = family.action_key or (lambda text: text.strip())
    sampled: list[list[str]] = [[] for _ in states]
    if not use_valid:
        policy: Policy = load_policy()
        prompts = [build_messages(family.system_prompt, s.observations[: s.i + 1], s.actions[: s.i], window) for s in states]
        requests = [sampling.for_request("alternative", s.task.env, s.task.id, s.i, j) for s in states for j in range(k)]
        out = policy.generate([p for p in prompts for _ in range(k)], requests)
        ledger.model_calls += len(out)
        ledger.gen_tokens += sum(c.num_tokens for c in out)
        sampled = [[c.text for c in out[j * k : (j + 1) * k] if family.action_key is None or family.action_key(c.text)] for j in range(len(states))]
    spent: dict[str, int] = {}
    with EnvPool(family, env_kwargs, capacity=1) as pool:
        env = pool.acquire()
        for state, candidates in zip(states, sampled):
            expert_key, seen, at_state = same(state.actions[state.i]), set(), False

            def reach() -> bool:  # replay the expert's prefix, charged to the task's budget
                if spent.get(state.task.id, 0) + state.i + 1 > budget:
                    return False
                spent[state.task.id] = spent.get(state.task.id, 0) + state.i
                try:
                    replay(env, state.task, state.actions[: state.i], state.observations[: state.i + 1], family.canonical)
                except ReplayDivergence as err:
                    ledger.replay_divergences += 1
                    ledger.replay_steps += err.step
                    return False
                ledger.replay_steps += state.i
                return True

            if family.valid_actions is not None:  # listed at the state itself
                if not reach():
                    continue
                at_state = True
                valid = family.valid_actions(env)
                candidates = candidates + random.Random(f"{seed}/{state.task.id}/{state.i}").sample(valid, len(valid))
            for action in candidates:
                key = same(action)
                if key == expert_key or key in seen or len(state.alternatives) >= k:
                    continue
                if not at_state and not reach():
                    break
                seen.add(key)
                spent[state.task.id] = spent.get(state.task.id, 0) + 1
                ledger.env_steps += 1
                state.alternatives.append((action, env.step(action).observation))
                at_state = False
    ledger.alternatives = sum(len(s.alternatives) for s in states)


def run(ctx: RunContext) -> dict[str, Any]:
    from baselines.early_experience import self_reflection, world_model

    m = ctx.cfg.method
    if m.variant not in VARIANTS:
        raise ValueError(f"method.variant={m.variant!r}: use one of {', '.join(VARIANTS)}")
    window, system = ctx.prompt.history_window, ctx.family.system_prompt
    tasks = ctx.tasks("train")
    trajectories = expert_trajectories(ctx.family, ctx.env_kwargs, tasks, ctx.expert)
    expert = expert_records(system, trajectories, window)
    ledger = Ledger(tasks=len(tasks), expert_steps=len(expert))
    states = expert_states(trajectories)
    ledger.states = len(states)
    load = ctx.loader()
    start = time.monotonic()
    alternatives(
        states, ctx.family, ctx.env_kwargs, m.k, m.alternatives, ctx.cfg.budget, load, ctx.sampling(), window, ctx.seed, ledger
    )  # fmt: skip
    print(
        f"[early experience] {ledger.alternatives} alternatives at {ledger.states} expert states of {len(trajectories)} "
        f"tasks; {ledger.env_steps} env + {ledger.replay_steps} replay steps; {time.monotonic() - start:.0f} s",
        flush=True,
    )
    sft_dir = ctx.run_dir / "sft"
    write_jsonl(sft_dir / "sft_expert.jsonl", expert)
    runs = {"base": evaluate(ctx, ctx.init, "base", load)}
    stage = f"early_experience_{m.variant}"
    if m.variant == "iwm":
        data = world_model.records(system, states, window)
        write_jsonl(sft_dir / "sft_world_model.jsonl", data)
        del load
        first = ctx.sft(m.sft, ctx.init, [str(sft_dir / "sft_world_model.jsonl")], ctx.run_dir / "world_model", epochs=m.world_model_epochs)
        world, world_budget = ctx.train_sft(first, f"{stage} world model", tasks, variant="iwm/world_model")
        imitation = ctx.sft(m.sft, str(world), [str(sft_dir / "sft_expert.jsonl")], ctx.run_dir / "checkpoint")
        imitation.epochs = world_model.imitation_epochs(first, imitation)
        checkpoint, budget = ctx.train_sft(imitation, stage, tasks, variant="iwm/imitation")
        budget = {k: budget[k] + world_budget[k] for k in ("train_examples", "gradient_steps")}
        data_stats = {"world_model_records": len(data), "expert_records": len(expert), "imitation_epochs": imitation.epochs}
    else:
        data, stats = self_reflection.records(ctx.family, states, window, load(), ctx.sampling(m.reflection_sampling), ledger)
        write_jsonl(sft_dir / "sft_reflection.jsonl", data)
        del load
        files = [str(sft_dir / "sft_expert.jsonl")] + ([str(sft_dir / "sft_reflection.jsonl")] if data else [])
        checkpoint, budget = ctx.train_sft(ctx.sft(m.sft, ctx.init, files, ctx.run_dir / "checkpoint"), stage, tasks, variant="sr")
        data_stats = {**stats, "expert_records": len(expert)}
    runs[stage] = evaluate(ctx, str(checkpoint), stage)
    return {"runs": runs, "ledger": {**ledger.__dict__, **budget}, "data": data_stats, "checkpoint": str(checkpoint)}
