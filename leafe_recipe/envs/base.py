"""The environment protocol every family implements, the registry, and replay.

A LEAFE tree branches by resetting an environment and re-executing a recorded
action prefix, so every environment must be deterministic given (task, actions);
`replay` enforces that instead of trusting it.
"""

from __future__ import annotations

import dataclasses
import functools
import importlib
import inspect
from dataclasses import asdict, dataclass, field
from typing import Any, Callable, Protocol

from leafe_recipe import Unavailable


@dataclass(frozen=True)
class Task:
    """One episode's definition; `data` is plain JSON and rebuilds the episode exactly."""

    env: str
    id: str
    data: dict[str, Any]

    def to_json(self) -> dict[str, Any]:
        return asdict(self)

    @staticmethod
    def from_json(record: dict[str, Any]) -> "Task":
        return Task(env=record["env"], id=str(record["id"]), data=record["data"])


@dataclass
class Step:
    """What `Env.step` returns (the gymnasium contract, flattened to text)."""

    observation: str
    reward: float
    done: bool
    success: bool
    info: dict[str, Any] = field(default_factory=dict)


class Env(Protocol):
    """A text environment. Invalid actions are feedback, never exceptions. An environment is
    reused for many episodes (reset rebuilds all its state) and closed when no longer needed
    (envs/pool.py)."""

    def reset(self, task: Task) -> str:
        """Start `task`; return the instruction and the first observation."""

    def step(self, action: str) -> Step:
        """Apply one raw model output (the environment parses it)."""

    def close(self) -> None:
        """Release what the environment holds (a simulator process, an index)."""


@dataclass(frozen=True)
class EnvFamily:
    """How to build an environment and its tasks from config keyword arguments."""

    make: Callable[..., Env]
    tasks: Callable[..., list[Task]]  # tasks(split, n, **kwargs) -> list[Task]
    system_prompt: str
    # The first action after which the task can no longer be solved, where the family
    # can tell (Sokoban's solver can): grades where reflections roll back to.
    fatal_step: Callable[[Task, list[str]], int | None] | None = None
    # Replay compares observations through this (e.g. sorting an unordered list of objects)
    # for a simulator that is deterministic only up to such differences; None: exactly.
    canonical: Callable[[str], str] | None = None
    runs_code: bool = False  # its environments execute model-written programs (in the sandbox)
    # The answers (as the model should write them) that solve a task, where the family knows
    # them (Sokoban: the solver's plan; coding: the reference solution): imitation and Early
    # Experience learn from them.
    expert: Callable[[Task], list[str] | None] | None = None
    # Every answer the environment accepts in its current state, as the model would write it,
    # where the environment can list them (Sokoban: the four moves; ALFWorld: its admissible
    # commands); alternatives are sampled from the policy elsewhere.
    valid_actions: Callable[[Env], list[str]] | None = None
    # The action an answer amounts to, to compare answers (Sokoban: its move); None where
    # answers cannot be compared beyond their text.
    action_key: Callable[[str], str | None] | None = None
    # A reflection answer as an oracle would write it (Sokoban: the solver's fatal step and move),
    # for the ablation that replaces the policy's reflection (method.explore.reflection=oracle).
    oracle_reflection: Callable[[Task, list[str], bool], str] | None = None
    # Lifecycle (envs/pool.py): run each environment in a worker process (a slow or not
    # thread-safe simulator), and at most this many alive at once (None: no limit).
    processes: bool = False
    max_live: int | None = None
    # What makes two tasks the same problem, as named content identities (Sokoban: the room up to
    # symmetry; code: the normalised statement, and separately the test inputs). Two tasks sharing
    # any one identity are the same problem to the held-out checks (leafe_recipe/splits.py), whatever
    # their ids; every family must give one.
    fingerprint: Callable[[Task], dict[str, str]] | None = None
    # Text compared for near-duplicates by lm-eval's n-gram janitor (code statements); None: exact only.
    near_text: Callable[[Task], str] | None = None
    splits: tuple[str, ...] = ("train", "validation", "test")  # the splits its loader has (SPLITS, or fewer)
    name: str = ""  # set by `register`


class EnvUnavailable(Unavailable):
    """An environment's simulator or data is not installed here; the message says how to get it."""


REGISTRY: dict[str, EnvFamily] = {}


class EnvConfigError(ValueError):
    """An env.tasks or env.kwargs key the family does not take; the message lists the ones it does."""


def _checked(fn: Callable, what: str, defaults: dict[str, Any]) -> Callable:
    """`fn` with its keyword arguments' values from the env config (`defaults`: the one place they
    are written), checked against its signature first, so a wrong config key is named with the
    valid ones rather than failing somewhere inside."""
    try:
        signature = inspect.signature(fn)
    except (TypeError, ValueError):
        return fn

    @functools.wraps(fn)
    def call(*args: Any, **kwargs: Any) -> Any:
        kwargs = {**defaults, **kwargs}
        try:
            signature.bind(*args, **kwargs)
        except TypeError as err:
            valid = [p.name for p in list(signature.parameters.values())[len(args) :] if p.kind in (p.KEYWORD_ONLY, p.POSITIONAL_OR_KEYWORD)]
            raise EnvConfigError(f"{what}: {err}; valid keys: {', '.join(valid)}") from None
        return fn(*args, **kwargs)

    return call


# The splits every family's task loader takes: train (learned from), validation (model selection,
# tuning, early stopping) and test (the reported numbers, touched once). Disjoint by content.
SPLITS = ("train", "validation", "test")


def register(name: str, family: EnvFamily) -> None:
    """Register a family; its environment's and task loader's settings default to its env config's
    `kwargs` and `tasks` (hydra_conf/env/<name>.yaml), where it has one: the one home of those values."""
    from omegaconf import OmegaConf

    if family.fingerprint is None:
        raise ValueError(f"environment family {name!r} needs a fingerprint (EnvFamily.fingerprint): what makes two of "
                         "its tasks the same problem, for the held-out checks")  # fmt: skip
    config = env_config(name)
    settings = lambda key: dict(OmegaConf.to_container(config[key], resolve=True) or {}) if config is not None and key in config else {}  # noqa: E731
    REGISTRY[name] = dataclasses.replace(
        family, name=name, make=_checked(family.make, f"env.kwargs of {name}", settings("kwargs")),
        tasks=_checked(family.tasks, f"env.tasks of {name}", settings("tasks")),
        expert=family.expert and _checked(family.expert, f"env.expert of {name}", settings("expert")),
    )  # fmt: skip


def env_config(name: str) -> Any:
    """hydra_conf/env/<name>.yaml as written, unresolved (an OmegaConf node: the one source the `leafe`
    app and every lm-eval task start from; its `module` registers the family, `extra` names the
    pyproject extra its simulator needs), or None where there is none."""
    from omegaconf import OmegaConf

    from leafe_recipe import CONF_DIR

    path = CONF_DIR / "env" / f"{name}.yaml"
    return OmegaConf.load(path) if path.is_file() else None


def known_families() -> list[str]:
    from leafe_recipe import CONF_DIR

    return sorted({p.stem for p in (CONF_DIR / "env").glob("*.yaml")} | set(REGISTRY))


def get_family(name: str) -> EnvFamily:
    """The registered family `name`, importing the module its env config names on first use (so
    importing the package starts no simulator and needs no optional dependency)."""
    if name not in REGISTRY and (config := env_config(name)) is not None:
        importlib.import_module(config["module"])
    if name not in REGISTRY:
        raise KeyError(f"unknown environment {name!r}; environments: {', '.join(known_families())}")
    return REGISTRY[name]


def needs_extra(name: str, module: str, err: ImportError) -> EnvUnavailable:
    """The error for a family whose optional dependency is missing, naming the extra to install."""
    extra = (env_config(name) or {}).get("extra") or name
    return EnvUnavailable(
        f"the {name} environment needs {module!r}, which is not installed ({err}). Install it with "
        f"`pip install -e '.[{extra}]'` (see docs/environments.md)"
    )


class ReplayDivergence(RuntimeError):
    """A replayed prefix produced a different observation: the environment is not deterministic.
    `step` is the number of actions replayed when it showed (0: the reset itself)."""

    def __init__(self, message: str, step: int, expected: str = "", got: str = ""):
        super().__init__(message)
        self.step, self.expected, self.got = step, expected, got


def replay(
    env: Env, task: Task, actions: list[str], observations: list[str], canonical: Callable[[str], str] | None = None
) -> str:
    """Reset `env` to `task` and re-execute `actions`, checking every observation (through
    `canonical` when given: the family's canonicaliser).

    `observations` is the recorded [o_0, o_1, ..., o_n] (o_0 from reset, o_i after
    action i), n = len(actions). Returns o_n as the environment gives it now, the state
    the branch continues from.
    """
    if len(observations) != len(actions) + 1:
        raise ValueError(
            f"replay needs len(observations) == len(actions) + 1, got {len(observations)} and {len(actions)}"
        )
    same = (lambda a, b: a == b) if canonical is None else (lambda a, b: canonical(a) == canonical(b))
    obs = env.reset(task)
    _check(task, 0, observations[0], obs, same)
    for i, action in enumerate(actions, start=1):
        step = env.step(action)
        _check(task, i, observations[i], step.observation, same)
        if step.done and i < len(actions):
            raise ReplayDivergence(
                f"task {task.env}/{task.id}: episode ended at step {i} while replaying {len(actions)} actions", i
            )
        obs = step.observation
    return obs


def _check(task: Task, i: int, expected: str, got: str, same: Callable[[str, str], bool]) -> None:
    if not same(expected, got):
        raise ReplayDivergence(
            f"task {task.env}/{task.id}: observation after step {i} differs on replay "
            f"(expected {expected[:200]!r}, got {got[:200]!r}); the environment is not deterministic "
            "for this task, so a rollback to this step would corrupt the tree",
            i,
            expected,
            got,
        )
