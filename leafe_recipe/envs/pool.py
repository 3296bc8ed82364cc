"""Environments with a lifecycle: reused from a pool, optionally in worker processes, closed
at the end.

A simulator can be costly to start (ScienceWorld starts a JVM, WebShop loads a search
index) or to keep (hundreds of MB each), so episodes, exploration branches and evaluations
take an environment from an `EnvPool`, reset it (reset rebuilds all of an environment's
state), and give it back when the episode ends; at most `capacity` are alive at once (the
family's `max_live`, or the env config's), and the pool closes them all when it closes.

A family whose simulator is slow or not thread-safe (`EnvFamily.processes`) runs each
environment in a worker process (`ProcessEnv`): steps of many environments then proceed in
parallel (the rollout steps them from threads), and one slow step does not stall the rest.
The proxy keeps the episode's record (task, actions, observations); if its worker dies (a
crashed simulator), it starts a new one, replays the episode to where it was and repeats
the step, so the episode's record is not lost.
"""

from __future__ import annotations

import json
import socket
import subprocess
import sys
import traceback
from multiprocessing.connection import Connection
from typing import Any

from leafe_recipe.envs.base import Env, EnvFamily, Step, Task, replay


class EnvCrashed(RuntimeError):
    """A worker process running an environment died and could not be brought back."""


def _serve(family_name: str, env_kwargs: dict[str, Any], conn: Connection) -> None:
    """A worker process: one environment, driven over `conn` until "close" or EOF."""
    from leafe_recipe.envs.base import get_family

    env = get_family(family_name).make(**env_kwargs)
    try:
        while True:
            try:
                method, args = conn.recv()
            except EOFError:
                return
            if method == "close":
                return
            try:
                conn.send(("ok", getattr(env, method)(*args)))
            except Exception as err:  # the environment's own error goes back to the caller
                conn.send(("error", f"{type(err).__name__}: {err}\n{traceback.format_exc()}"))
    finally:
        close = getattr(env, "close", None)
        if close is not None:
            close()


class ProcessEnv:
    """An environment of `family` in its own worker process, behind the Env protocol."""

    RESTARTS = 2  # worker deaths tolerated per episode

    def __init__(self, family_name: str, env_kwargs: dict[str, Any], canonical=None):
        self.family_name, self.env_kwargs, self.canonical = family_name, env_kwargs, canonical
        self.task: Task | None = None
        self.actions: list[str] = []
        self.observations: list[str] = []
        self._start()

    def _start(self) -> None:
        # A fresh interpreter (not a fork of the parent, which holds models and threads; not
        # multiprocessing's spawn, which re-runs the caller's main script), talking over a socket.
        ours, theirs = socket.socketpair()
        command = [sys.executable, "-m", "leafe_recipe.envs.pool", str(theirs.fileno()), self.family_name, json.dumps(self.env_kwargs)]
        self._process = subprocess.Popen(command, pass_fds=(theirs.fileno(),), stdout=subprocess.DEVNULL)
        theirs.close()
        self._conn = Connection(ours.detach())

    def _call(self, method: str, *args: Any) -> Any:
        self._conn.send((method, args))
        status, value = self._conn.recv()
        if status == "error":
            raise RuntimeError(f"{self.family_name} environment ({method}) failed in its worker process: {value}")
        return value

    def _restart(self, why: BaseException) -> None:
        self._process.kill()
        self._process.wait()
        self._conn.close()
        self._start()
        if self.task is not None:
            replay(_Remote(self), self.task, self.actions, self.observations, self.canonical)

    def _with_restarts(self, method: str, *args: Any) -> Any:
        for attempt in range(self.RESTARTS + 1):
            try:
                return self._call(method, *args)
            except (EOFError, BrokenPipeError, ConnectionResetError, OSError) as err:
                if attempt == self.RESTARTS:
                    raise EnvCrashed(
                        f"the {self.family_name} environment's worker process died {attempt + 1} times on {method}; "
                        f"last: {err!r}"
                    ) from err
                self._restart(err)
        raise AssertionError("unreachable")

    def reset(self, task: Task) -> str:
        self.task, self.actions = None, []  # a crash now needs no replay
        observation = self._with_restarts("reset", task)
        self.task, self.observations = task, [observation]
        return observation

    def step(self, action: str) -> Step:
        step = self._with_restarts("step", action)
        self.actions.append(action)
        self.observations.append(step.observation)
        return step

    def __getattr__(self, name: str) -> Any:
        """Any other method of the environment (e.g. its valid actions), called in the worker."""
        if name.startswith("_"):
            raise AttributeError(name)
        return lambda *args: self._with_restarts(name, *args)

    def close(self) -> None:
        try:
            self._conn.send(("close", ()))
        except (BrokenPipeError, OSError):
            pass
        try:
            self._process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            self._process.kill()
            self._process.wait()
        self._conn.close()


class _Remote:
    """The worker's environment, called directly (replay after a restart must not recurse)."""

    def __init__(self, proxy: ProcessEnv):
        self.proxy = proxy

    def reset(self, task: Task) -> str:
        return self.proxy._call("reset", task)

    def step(self, action: str) -> Step:
        return self.proxy._call("step", action)


class EnvPool:
    """Environments of one family and settings, reused across episodes; see the module docstring."""

    def __init__(self, family: EnvFamily, env_kwargs: dict[str, Any], capacity: int | None = None, processes: bool | None = None):
        self.family, self.env_kwargs = family, dict(env_kwargs)
        self.capacity = capacity if capacity is not None else family.max_live
        self.processes = family.processes if processes is None else processes
        self._free: list[Env] = []
        self._all: list[Env] = []

    def acquire(self) -> Env | None:
        """An environment to reset, or None when `capacity` of them are in use."""
        if self._free:
            return self._free.pop()
        if self.capacity is not None and len(self._all) >= self.capacity:
            return None
        env = ProcessEnv(self.family.name, self.env_kwargs, self.family.canonical) if self.processes else self.family.make(**self.env_kwargs)
        self._all.append(env)
        return env

    def release(self, env: Env) -> None:
        self._free.append(env)

    @property
    def available(self) -> int | None:
        """How many more environments can be acquired now (None: no limit)."""
        return None if self.capacity is None else self.capacity - len(self._all) + len(self._free)

    def close(self) -> None:
        for env in self._all:
            close = getattr(env, "close", None)
            if close is not None:
                close()
        self._all, self._free = [], []

    def __enter__(self) -> "EnvPool":
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def first_observations(family: EnvFamily, env_kwargs: dict[str, Any], tasks: list[Task]) -> list[str]:
    """Each task's first observation (what reset returns), from one environment reused."""
    with EnvPool(family, env_kwargs, capacity=1) as pool:
        env = pool.acquire()
        return [env.reset(task) for task in tasks]


if __name__ == "__main__":  # a worker process of ProcessEnv: <socket fd> <family> <env kwargs as JSON>
    _serve(sys.argv[2], json.loads(sys.argv[3]), Connection(int(sys.argv[1])))


def expert_trajectory(
    family: EnvFamily, env_kwargs: dict[str, Any], task: Task, expert: dict[str, Any] | None = None
) -> tuple[list[str], list[str]] | None:
    """The expert's answers (with the run's `expert` settings, env.expert) played in a fresh
    environment: (observations, actions) when the family has an expert for the task and it
    solves it within the episode, else None."""
    actions = family.expert(task, **(expert or {})) if family.expert is not None else None
    if not actions:
        return None
    with EnvPool(family, env_kwargs, capacity=1) as pool:
        env = pool.acquire()
        observations = [env.reset(task)]
        for i, action in enumerate(actions, start=1):
            step = env.step(action)
            observations.append(step.observation)
            if step.done:
                return (observations, actions[:i]) if step.success else None
    return None
