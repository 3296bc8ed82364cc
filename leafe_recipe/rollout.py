"""Lock-step batched episodes: every live (task, sample) episode advances one turn per
generate call, so the backend always sees the whole batch.

Episodes start in task order and a new one takes the place of each finished one, up
to `max_concurrent` live at once and as many as the environment pool lends (a family
may cap its live simulators); environments are reused from the pool and closed at the
end. A task's record (all its samples) goes to the trajectories file as soon as its last
sample ends, so memory holds the frontier only.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TypeVar

from leafe_recipe.envs.base import Env, EnvFamily, Step, Task
from leafe_recipe.envs.pool import EnvPool
from leafe_recipe.policy import Policy, Sampling
from leafe_recipe.prompts import build_messages
from leafe_recipe.records import JsonlWriter

T, R = TypeVar("T"), TypeVar("R")


@dataclass(frozen=True)
class Start:
    """An episode to play: from the task's reset, or from the state its `prefix` of actions
    reaches (replayed, as a LEAFE branch starts), with `experience` in every prompt."""

    task: Task
    sample: int
    prefix: tuple[str, ...] = ()
    experience: str | None = None


@dataclass
class Episode:
    task: Task
    sample: int
    env: Env
    observations: list[str]
    actions: list[str] = field(default_factory=list)
    experience: str | None = None
    rewards: list[float] = field(default_factory=list)
    invalid_actions: int = 0
    gen_tokens: int = 0
    truncated_outputs: int = 0
    done: bool = False
    success: bool = False

    def record(self) -> dict[str, Any]:
        return {
            "sample": self.sample,
            "observations": self.observations,
            "actions": self.actions,
            "rewards": self.rewards,
            "success": self.success,
            "env_steps": len(self.actions),
            "gen_tokens": self.gen_tokens,
            "invalid_actions": self.invalid_actions,
            "truncated_outputs": self.truncated_outputs,
        }


def task_key(record: dict[str, Any]) -> str:
    return f"{record['task']['env']}/{record['task']['id']}"


def in_threads(fn: Callable[[T], R], items: list[T], workers: int = 1) -> list[R]:
    """fn over items, in order; with workers > 1 in threads, for environment work that waits on
    other processes (the sandbox's programs, simulators in worker processes) rather than on Python."""
    if workers <= 1 or len(items) <= 1:
        return [fn(item) for item in items]
    with ThreadPoolExecutor(min(workers, len(items))) as pool:
        return list(pool.map(fn, items))


def step_envs(envs: list[Env], actions: list[str], workers: int = 1) -> list[Step]:
    """Step many environments (see in_threads)."""
    return in_threads(lambda pair: pair[0].step(pair[1]), list(zip(envs, actions, strict=True)), workers)


def run_episodes(
    starts: Iterable[tuple[Task, int] | Start],
    family: EnvFamily,
    env_kwargs: dict[str, Any],
    policy: Policy,
    sampling: Sampling,
    history_window: int | None = None,
    max_concurrent: int = 256,
    env_workers: int = 1,
    pool: EnvPool | None = None,
) -> Iterator[Episode]:
    """Play every (task, sample) or Start in `starts`; yield each episode when it ends.
    Environments come from `pool` (by default one of this call, closed when it ends). A
    Start's prefix is replayed on the environment and is part of the episode's actions. Every
    action is drawn with the request seed of (`sampling.seed`, task, sample, step), so an
    episode is the same whichever episodes run beside it (the (task, sample) pairs must be
    distinct)."""
    own = pool is None
    pool = EnvPool(family, env_kwargs) if own else pool
    pending = iter(starts)
    live: list[Episode] = []
    try:
        while True:
            new = []
            while len(live) + len(new) < max_concurrent and pool.available != 0 and (nxt := next(pending, None)) is not None:
                new.append(Episode(**_start_fields(nxt), env=pool.acquire(), observations=[]))
            in_threads(_begin, new, env_workers)
            live += new
            if not live:
                return
            prompts = [build_messages(family.system_prompt, ep.observations, ep.actions, history_window, ep.experience) for ep in live]
            requests = [sampling.for_request("episode", ep.task.env, ep.task.id, ep.sample, len(ep.actions)) for ep in live]
            completions = policy.generate(prompts, requests)
            steps = step_envs([ep.env for ep in live], [c.text for c in completions], env_workers)
            still: list[Episode] = []
            for ep, out, step in zip(live, completions, steps, strict=True):
                ep.actions.append(out.text)
                ep.observations.append(step.observation)
                ep.rewards.append(step.reward)
                ep.gen_tokens += out.num_tokens
                ep.truncated_outputs += out.truncated
                ep.invalid_actions += bool(step.info.get("invalid"))
                if step.done:
                    ep.done, ep.success = True, step.success
                    pool.release(ep.env)
                    yield ep
                else:
                    still.append(ep)
            live = still
    finally:
        if own:
            pool.close()


def _start_fields(start: tuple[Task, int] | Start) -> dict[str, Any]:
    s = start if isinstance(start, Start) else Start(*start)
    return {"task": s.task, "sample": s.sample, "actions": list(s.prefix), "experience": s.experience}


def _begin(ep: Episode) -> None:
    """Reset the episode's environment and replay its prefix."""
    ep.observations.append(ep.env.reset(ep.task))
    for action in ep.actions:
        step = ep.env.step(action)
        if step.done:
            raise ValueError(f"{ep.task.env}/{ep.task.id}: the start's prefix ends the episode at step {len(ep.observations)}")
        ep.observations.append(step.observation)


def rollout(
    tasks: list[Task],
    n_samples: int,
    family: EnvFamily,
    env_kwargs: dict[str, Any],
    policy: Policy,
    sampling: Sampling,
    out_path: str | Path,
    history_window: int | None = None,
    max_concurrent: int = 256,
    env_workers: int = 1,
) -> Path:
    """Write one trajectories record per task (its n samples) to `out_path`; resumable.
    Shows a progress bar (tasks done, successes so far)."""
    from tqdm import tqdm

    with JsonlWriter(out_path, key=task_key) as writer:
        todo = [t for t in tasks if f"{t.env}/{t.id}" not in writer.done]
        by_task: dict[str, list[Episode]] = {}
        starts = ((t, s) for t in todo for s in range(n_samples))
        bar = tqdm(total=len(tasks), initial=len(tasks) - len(todo), desc="rollout", unit="task", mininterval=2)
        successes = 0
        for ep in run_episodes(starts, family, env_kwargs, policy, sampling, history_window, max_concurrent, env_workers):
            group = by_task.setdefault(ep.task.id, [])
            group.append(ep)
            successes += ep.success
            if len(group) == n_samples:
                bar.update(1)
                bar.set_postfix(successes=successes, refresh=False)
                samples = sorted(group, key=lambda e: e.sample)
                writer.write(
                    {
                        "task": ep.task.to_json(),
                        "n": n_samples,
                        "c": sum(e.success for e in samples),
                        "samples": [e.record() for e in samples],
                    }
                )
                del by_task[ep.task.id]
        bar.close()
    return Path(out_path)
