"""LEAFE stage 1: tree-based experience generation.

Per task, an exploration tree of trajectories (nodes). The root is a plain rollout.
Every `reflect_every` steps of a live node, and whenever a node ends in failure, the
policy reflects on the node's history and answers a rollback step tau and an
experience e. A branch then resets the environment, replays the node's actions
a_1..a_{tau-1} (`replay` checks every observation, so a non-deterministic
environment cannot corrupt the tree), and continues from step tau with e in its
prompt: its first action is the revised action a'_tau that stage 2 distils.

Branch requests wait in a FIFO queue (breadth first) and start while the tree has
depth (`max_depth`), branches (`max_branches`) and interaction budget (`budget`
environment steps, replay steps included when `budget_counts_replay`) left for the
replay and for a'_tau: that step is reserved when the branch starts, so a branch always
gets its revised action. A node that reflects mid-episode keeps going: the branch is
an alternative, not a replacement. Periodic reflection counts a node's own steps (a
branch's start at tau, not the episode's step number).

With `reflection="oracle"` the environment's oracle answers instead of the policy (no model
call; the ablation that bounds what better reflection would give).

Real simulators are not all exactly deterministic. A branch whose replay diverges
(`replay` compares through the family's canonicaliser, where it has one) is dropped
and counted (`replay_divergences`); exploration goes on, and stops with a clear
error only when more than `max_divergence_share` of the rollbacks diverged.

Lock-step: every round, one generate call carries the next action of every live
node and every pending reflection of every tree in flight. Each request is seeded by the
run's seed and what it is (task, node, step: `Sampling.for_request`), so a tree is the same
whichever trees grow beside it: the order of tasks, sharding and a resumed run change nothing. Finished trees stream to
`trees.jsonl` (one record per task, resumable), so memory holds only the frontier.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Callable, Iterator
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from leafe_recipe import tracking
from leafe_recipe.envs.base import Env, EnvFamily, ReplayDivergence, Step, Task, replay
from leafe_recipe.envs.pool import EnvPool
from leafe_recipe.policy import Policy, Sampling
from leafe_recipe.prompts import build_messages, build_reflection, parse_reflection
from leafe_recipe.records import JsonlWriter
from leafe_recipe.rollout import in_threads, step_envs, task_key


@dataclass(frozen=True)
class ExploreConfig:
    """method.explore (hydra_conf/method/leafe.yaml holds every value and says what each means),
    with the run's history window."""

    reflect_every: int  # K: reflect on a live node every K steps; 0 = only when a node fails
    max_depth: int  # the root has depth 0; a branch is one deeper than the node it revises
    max_branches: int  # branches started per task
    budget: int  # environment steps per task
    budget_counts_replay: bool  # charge the replayed prefix of each branch to the budget
    history_window: int | None
    max_concurrent_trees: int
    env_workers: int  # threads stepping environments (for sandboxed code execution)
    max_divergence_share: float  # stop when more of the rollbacks than this diverge on replay
    reflection: str  # who reflects: the policy, or the environment's oracle (an ablation's upper bound)


MIN_ROLLBACKS_FOR_SHARE = 20  # the divergence share is judged once this many rollbacks were tried


class ExplorationError(RuntimeError):
    """Stage 1 cannot go on (the trees finished so far are on disk); the message says why and what to change."""


@dataclass
class Ledger:
    """Per-task accounting of what exploration cost and produced."""

    env_steps: int = 0  # steps taken by the policy's actions
    replay_steps: int = 0  # steps re-executed to reach branch points
    model_calls: int = 0  # generation requests: actions and reflections
    gen_tokens: int = 0
    reflections: int = 0
    reflections_unparsed: int = 0
    branches: int = 0
    branches_dropped: int = 0  # requests that found no depth, branch or budget left
    replay_divergences: int = 0  # branches dropped because their replay did not reproduce the history
    successes: int = 0  # nodes that solved the task

    def charged(self, counts_replay: bool) -> int:
        return self.env_steps + (self.replay_steps if counts_replay else 0)


@dataclass
class Node:
    """One trajectory of the tree. A branch shares its parent's first tau-1 steps."""

    id: int
    parent: int | None
    depth: int
    tau: int | None  # the step this branch revises (1-based); None for the root
    experience: str | None
    observations: list[str]
    actions: list[str] = field(default_factory=list)
    rewards: list[float] = field(default_factory=list)
    experience_steps: list[int] = field(default_factory=list)  # steps whose prompt held the experience
    end: str | None = None  # success | failure | budget
    env: Env | None = field(default=None, repr=False)

    def record(self) -> dict[str, Any]:
        out = asdict(self)
        out.pop("env")
        out["success"] = self.end == "success"
        return out


@dataclass(frozen=True)
class BranchRequest:
    node: int
    tau: int
    experience: str


@dataclass
class Tree:
    task: Task
    nodes: list[Node] = field(default_factory=list)
    queue: deque[BranchRequest] = field(default_factory=deque)
    reflecting: list[tuple[Node, bool]] = field(default_factory=list)  # (node, finished) awaiting reflection
    reflections: list[dict[str, Any]] = field(default_factory=list)
    divergences: list[dict[str, Any]] = field(default_factory=list)
    ledger: Ledger = field(default_factory=Ledger)
    reserved: int = 0  # budget steps held for the revised action of branches that have not acted yet

    def live(self) -> list[Node]:
        return [n for n in self.nodes if n.end is None]

    def done(self) -> bool:
        return not self.live() and not self.reflecting and not self.queue

    def record(self) -> dict[str, Any]:
        return {
            "task": self.task.to_json(),
            "ledger": asdict(self.ledger),
            "nodes": [n.record() for n in self.nodes],
            "reflections": self.reflections,
            "divergences": self.divergences,
        }


def explore(
    tasks: list[Task],
    family: EnvFamily,
    env_kwargs: dict[str, Any],
    policy: Policy,
    sampling: Sampling,
    reflection_sampling: Sampling,
    config: ExploreConfig,
    out_path: str | Path,
    pool: EnvPool | None = None,
) -> Path:
    """Build one exploration tree per task and append it to `out_path`; resumable.
    Environments come from `pool` (by default one of this call, closed when it ends).
    Shows a progress bar; returns the path."""
    from tqdm import tqdm

    if config.reflection not in ("policy", "oracle"):
        raise ExplorationError(f"method.explore.reflection={config.reflection!r}: use policy or oracle")
    if config.reflection == "oracle" and family.oracle_reflection is None:
        raise ExplorationError(f"method.explore.reflection=oracle: the {family.name} environment has no oracle (Sokoban has one)")
    with JsonlWriter(out_path, key=task_key) as writer:
        todo = [t for t in tasks if f"{t.env}/{t.id}" not in writer.done]
        totals = Ledger()
        bar = tqdm(total=len(tasks), initial=len(tasks) - len(todo), desc="explore", unit="tree", mininterval=2)
        try:
            for tree in _grow(iter(todo), family, env_kwargs, policy, sampling, reflection_sampling, config, pool):
                writer.write(tree.record())
                for name, value in asdict(tree.ledger).items():
                    setattr(totals, name, getattr(totals, name) + value)
                bar.update(1)
                bar.set_postfix(
                    env_steps=totals.env_steps,
                    budget=f"{totals.charged(config.budget_counts_replay) / (config.budget * bar.n or 1):.0%}",
                    solved=totals.successes,
                    diverged=totals.replay_divergences,
                    refresh=False,
                )
                tracking.log("explore", asdict(totals), step=bar.n)
                _check_divergences(totals, config, tree)
        finally:
            bar.close()
    return Path(out_path)


def _check_divergences(totals: Ledger, config: ExploreConfig, tree: Tree) -> None:
    rollbacks = totals.branches + totals.replay_divergences
    if rollbacks < MIN_ROLLBACKS_FOR_SHARE or totals.replay_divergences <= config.max_divergence_share * rollbacks:
        return
    last = tree.divergences[-1] if tree.divergences else {}
    raise ExplorationError(
        f"{totals.replay_divergences} of {rollbacks} rollbacks ({totals.replay_divergences / rollbacks:.0%}) diverged on "
        f"replay, more than method.explore.max_divergence_share={config.max_divergence_share}: this environment does "
        "not reproduce its observations when the same actions are replayed"
        + (f" (latest: task {tree.task.env}/{tree.task.id}, step {last.get('step')}, expected {last.get('expected')!r}, "
           f"got {last.get('got')!r})" if last else "")
        + ". Give the environment family an observation canonicaliser (EnvFamily.canonical) that removes the "
        "differences that do not matter, or raise the share. The trees finished so far are kept."
    )


def _grow(
    todo: Iterator[Task],
    family: EnvFamily,
    env_kwargs: dict[str, Any],
    policy: Policy,
    sampling: Sampling,
    reflection_sampling: Sampling,
    cfg: ExploreConfig,
    pool: EnvPool | None = None,
) -> Iterator[Tree]:
    if pool is not None:
        yield from _rounds(todo, family, pool, policy, sampling, reflection_sampling, cfg)
        return
    with EnvPool(family, env_kwargs) as own:
        yield from _rounds(todo, family, own, policy, sampling, reflection_sampling, cfg)


def _rounds(
    todo: Iterator[Task],
    family: EnvFamily,
    pool: EnvPool,
    policy: Policy,
    sampling: Sampling,
    reflection_sampling: Sampling,
    cfg: ExploreConfig,
) -> Iterator[Tree]:
    """The lock-step rounds; environments come from `pool` and go back when a node ends."""
    trees: list[Tree] = []
    while True:
        new = []
        while len(trees) + len(new) < cfg.max_concurrent_trees and pool.available != 0 and (task := next(todo, None)) is not None:
            new.append((task, pool.acquire()))
        firsts = in_threads(lambda start: start[1].reset(start[0]), new, cfg.env_workers)  # simulators reset at once
        trees += [Tree(task=task, nodes=[Node(0, None, 0, None, None, [first], env=env)]) for (task, env), first in zip(new, firsts)]
        if not trees:
            return
        _start_branches(trees, family, pool, cfg)
        prompts, settings, jobs = [], [], []
        for tree in trees:
            for node in _take_budget(tree, cfg):
                prompts.append(
                    build_messages(family.system_prompt, node.observations, node.actions, cfg.history_window, node.experience)
                )
                settings.append(sampling.for_request("node", tree.task.env, tree.task.id, node.id, len(node.actions)))
                jobs.append((tree, node, None))
            for node, finished in tree.reflecting:
                if cfg.reflection == "oracle":  # no model call: the answer the oracle gives
                    _reflect(tree, node, family.oracle_reflection(tree.task, node.actions, finished), len(node.actions), family)
                    continue
                prompts.append(build_reflection(node.observations, node.actions, finished))
                settings.append(reflection_sampling.for_request("reflect", tree.task.env, tree.task.id, node.id, len(node.actions)))
                jobs.append((tree, node, len(node.actions)))
            tree.reflecting = []
        completions = policy.generate(prompts, settings) if prompts else []
        acting = [(job, out) for job, out in zip(jobs, completions, strict=True) if job[2] is None]
        steps = step_envs([node.env for (_, node, _), _ in acting], [out.text for _, out in acting], cfg.env_workers)
        for ((tree, node, _), out), step in zip(acting, steps):
            _act(tree, node, out.text, step, cfg)
        for (tree, node, reflect_at), out in zip(jobs, completions):
            tree.ledger.model_calls += 1
            tree.ledger.gen_tokens += out.num_tokens
            if reflect_at is not None:
                _reflect(tree, node, out.text, reflect_at, family)
        for tree in trees:
            for node in tree.nodes:
                if node.end is not None and node.env is not None:
                    pool.release(node.env)
                    node.env = None
        for tree in [t for t in trees if t.done()]:
            trees.remove(tree)
            yield tree


def _own_steps(node: Node) -> int:
    """Steps the node took itself (a branch's replayed prefix is its parent's)."""
    return len(node.actions) - (node.tau - 1 if node.tau is not None else 0)


def _take_budget(tree: Tree, cfg: ExploreConfig) -> list[Node]:
    """The live nodes that may act this round. A new branch acts on the step reserved for
    it when it started; the others take one step each while the budget lasts, then end."""
    left = cfg.budget - tree.ledger.charged(cfg.budget_counts_replay) - tree.reserved
    acting = []
    for node in tree.live():
        if node.tau is not None and _own_steps(node) == 0:
            acting.append(node)
            tree.reserved -= 1
        elif left > 0:
            acting.append(node)
            left -= 1
        else:
            node.end = "budget"
    return acting


def _act(tree: Tree, node: Node, text: str, step: Step, cfg: ExploreConfig) -> None:
    if node.experience is not None:
        node.experience_steps.append(len(node.actions) + 1)
    tree.ledger.env_steps += 1
    node.actions.append(text)
    node.observations.append(step.observation)
    node.rewards.append(step.reward)
    can_branch = node.depth < cfg.max_depth
    if step.done:
        node.end = "success" if step.success else "failure"
        tree.ledger.successes += step.success
        if not step.success and can_branch:
            tree.reflecting.append((node, True))
    elif can_branch and cfg.reflect_every and _own_steps(node) % cfg.reflect_every == 0:
        tree.reflecting.append((node, False))


def _reflect(tree: Tree, node: Node, text: str, t: int, family: EnvFamily) -> None:
    """Parse a reflection on node's first t steps; a usable one queues a branch."""
    r = parse_reflection(text, t)
    tree.ledger.reflections += 1
    tree.ledger.reflections_unparsed += not r.parsed
    record = {"node": node.id, "t": t, "raw": text, "parsed": r.parsed, "tau": r.tau, "clamped": r.clamped, "experience": r.experience}
    if family.fatal_step is not None:
        record["fatal_step"] = family.fatal_step(tree.task, node.actions[:t])
    tree.reflections.append(record)
    if r.tau is not None:
        tree.queue.append(BranchRequest(node.id, r.tau, r.experience))


def _start_branches(trees: list[Tree], family: EnvFamily, pool: EnvPool, cfg: ExploreConfig) -> None:
    """Pop branch requests in FIFO order; roll back and start each one that still fits, with
    its replay charged and a budget step reserved for its revised action. A request waits (at
    the head of its queue) while the pool has no environment to lend. The replays of every
    tree run at once (`env_workers` threads); a divergent one drops its branch and gives back
    what was charged for the steps it did not replay."""
    starts = []
    for tree in trees:
        while tree.queue and pool.available != 0:
            req = tree.queue.popleft()
            parent = tree.nodes[req.node]
            replayed = req.tau - 1
            cost = 1 + (replayed if cfg.budget_counts_replay else 0)  # the prefix, and a'_tau
            left = cfg.budget - tree.ledger.charged(cfg.budget_counts_replay) - tree.reserved
            if parent.depth + 1 > cfg.max_depth or tree.ledger.branches >= cfg.max_branches or cost > left:
                tree.ledger.branches_dropped += 1
                continue
            tree.reserved += 1
            tree.ledger.branches += 1
            tree.ledger.replay_steps += replayed
            starts.append((tree, parent, req, pool.acquire()))

    def attempt(start: tuple) -> Node | ReplayDivergence:
        tree, parent, req, env = start
        try:
            return rollback(tree, parent, req, env, family.canonical)
        except ReplayDivergence as err:
            return err

    for (tree, parent, req, env), node in zip(starts, in_threads(attempt, starts, cfg.env_workers)):
        if isinstance(node, ReplayDivergence):
            pool.release(env)
            tree.reserved -= 1
            tree.ledger.branches -= 1
            tree.ledger.replay_steps -= req.tau - 1 - node.step
            tree.ledger.replay_divergences += 1
            tree.divergences.append(
                {"node": parent.id, "tau": req.tau, "step": node.step, "expected": node.expected[:500], "got": node.got[:500]}
            )
        else:
            node.id = len(tree.nodes)
            tree.nodes.append(node)


def rollback(
    tree: Tree, parent: Node, req: BranchRequest, env: Env, canonical: Callable[[str], str] | None = None
) -> Node:
    """Reset `env` and replay the parent's first tau-1 actions: the branch's state at step tau.
    The branch's history is the parent's recorded one, so its prompts (and D_cf's) are h_tau."""
    prefix_actions = parent.actions[: req.tau - 1]
    prefix_observations = parent.observations[: req.tau]
    replay(env, tree.task, prefix_actions, prefix_observations, canonical)
    return Node(
        id=len(tree.nodes),
        parent=parent.id,
        depth=parent.depth + 1,
        tau=req.tau,
        experience=req.experience,
        observations=list(prefix_observations),
        actions=list(prefix_actions),
        rewards=parent.rewards[: req.tau - 1],
        env=env,
    )
