"""method=search_compare: the paper's Table 3 question, is LEAFE's stage 1 itself a better search?

Three ways of spending one execution budget (`method.explore.budget` environment steps per
task, replays included) on the same train tasks, with the same model and sampling:

- independent: fresh rollouts, one after another, until the budget is spent;
- refinement: sequential retries with no rollback, each with the previous attempt's
  actions and final feedback in its prompt (`prompts.refinement_experience`, placed where
  LEAFE places an experience);
- tree: LEAFE's stage-1 exploration tree as method=leafe grows it (`leafe.grow_trees`).

An attempt is a rollout (a tree's node, in the order the nodes started); the sequential
strategies stop at a task's first success, whose later attempts could not change whether it
was solved. Each strategy writes search_<strategy>.jsonl, one record per task:
{"task", "budget", "attempts": [{"success", "steps", "replay_steps"}], "model_calls",
"gen_tokens"}; `leafe-report` turns them into "solved within k attempts" with CIs
(report._search_tables).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from leafe_recipe import tracking
from leafe_recipe.context import RunContext
from leafe_recipe.envs.base import Env, EnvFamily, Task
from leafe_recipe.envs.pool import EnvPool
from leafe_recipe.leafe import grow_trees
from leafe_recipe.policy import Policy, Sampling
from leafe_recipe.prompts import build_messages, refinement_experience
from leafe_recipe.records import JsonlWriter, claim, read_jsonl, write_jsonl
from leafe_recipe.rollout import in_threads, step_envs, task_key
from leafe_recipe.train import NEW_FOLDER

STRATEGIES = ("independent", "refinement", "tree")


class SearchError(ValueError):
    """The search comparison is misconfigured; the message says what to change."""


@dataclass
class Search:
    """One task's sequential attempts: the live attempt and what the finished ones did."""

    task: Task
    env: Env
    observations: list[str] = field(default_factory=list)
    actions: list[str] = field(default_factory=list)
    experience: str | None = None
    attempts: list[dict[str, Any]] = field(default_factory=list)
    spent: int = 0
    model_calls: int = 0
    gen_tokens: int = 0

    def record(self, budget: int) -> dict[str, Any]:
        return {"task": self.task.to_json(), "budget": budget, "attempts": self.attempts,
                "model_calls": self.model_calls, "gen_tokens": self.gen_tokens}  # fmt: skip


def sequential(
    tasks: list[Task],
    family: EnvFamily,
    env_kwargs: dict[str, Any],
    policy: Policy,
    sampling: Sampling,
    budget: int,
    refine: bool,
    out_path: Path,
    history_window: int | None,
    max_concurrent: int = 64,
    env_workers: int = 1,
) -> Path:
    """Attempts one after another per task (tasks in lock-step) until the task is solved or its
    budget is spent; with `refine`, each retry sees the previous attempt's feedback."""
    with JsonlWriter(out_path, key=task_key) as writer, EnvPool(family, env_kwargs) as pool:
        todo = iter([t for t in tasks if f"{t.env}/{t.id}" not in writer.done])
        live: list[Search] = []
        while True:
            while len(live) < max_concurrent and pool.available != 0 and (task := next(todo, None)) is not None:
                live.append(Search(task, pool.acquire()))
            if not live:
                return out_path
            fresh = [s for s in live if not s.observations]
            for s, first in zip(fresh, in_threads(lambda s: s.env.reset(s.task), fresh, env_workers)):
                s.observations = [first]
            prompts = [build_messages(family.system_prompt, s.observations, s.actions, history_window, s.experience) for s in live]
            completions = policy.generate(prompts, [sampling.for_request("search", s.task.env, s.task.id, s.spent) for s in live])
            steps = step_envs([s.env for s in live], [c.text for c in completions], env_workers)
            still = []
            for s, out, step in zip(live, completions, steps, strict=True):
                s.model_calls += 1
                s.gen_tokens += out.num_tokens
                s.spent += 1
                s.actions.append(out.text)
                s.observations.append(step.observation)
                if not step.done and s.spent < budget:
                    still.append(s)
                    continue
                success = step.done and step.success
                s.attempts.append({"success": success, "steps": len(s.actions), "replay_steps": 0})
                if refine and not success:
                    s.experience = refinement_experience(s.actions, step.observation, family.action_key)
                s.observations, s.actions = [], []
                if success or s.spent >= budget:
                    pool.release(s.env)
                    writer.write(s.record(budget))
                else:
                    still.append(s)
            live = still


def tree_attempts(trees: Path, budget: int) -> list[dict[str, Any]]:
    """The tree's nodes as attempts, in the order they started; a branch's replayed prefix is
    charged to it (as exploration charges it to the budget)."""
    out = []
    for r in read_jsonl(trees):
        attempts = [
            {"success": n["success"], "steps": len(n["actions"]) - (n["tau"] - 1 if n["tau"] else 0),
             "replay_steps": n["tau"] - 1 if n["tau"] else 0}
            for n in sorted(r["nodes"], key=lambda n: n["id"])
        ]  # fmt: skip
        out.append({"task": r["task"], "budget": budget, "attempts": attempts, "model_calls": r["ledger"]["model_calls"],
                    "gen_tokens": r["ledger"]["gen_tokens"]})  # fmt: skip
    return out


def run(ctx: RunContext) -> dict[str, Any]:
    m = ctx.cfg.method
    unknown = [s for s in m.strategies if s not in STRATEGIES]
    if unknown or not m.strategies:
        raise SearchError(f"method.strategies={list(m.strategies)}: choose from {', '.join(STRATEGIES)}")
    load = ctx.loader()
    budget = m.explore.budget
    tasks = ctx.tasks("train")
    files = {}
    for strategy in m.strategies:
        path = ctx.run_dir / f"search_{strategy}.jsonl"
        if strategy == "tree":
            trees = ctx.run_dir / "trees.jsonl"
            grow_trees(ctx, load, trees)
            write_jsonl(path, tree_attempts(trees, budget))
        else:
            claim(path, ctx.key(f"search_{strategy}", budget=budget), NEW_FOLDER)
            sequential(tasks, ctx.family, ctx.env_kwargs, load(), ctx.sampling(), budget, strategy == "refinement", path,
                       ctx.prompt.history_window, ctx.cfg.max_concurrent, ctx.cfg.env.env_workers)  # fmt: skip
        records = list(read_jsonl(path))
        solved = sum(any(a["success"] for a in r["attempts"]) for r in records)
        print(f"[search {strategy}] {solved} of {len(records)} train tasks solved within {budget} steps", flush=True)
        tracking.log(f"search/{strategy}", {"tasks": len(records), "solved": solved})
        files[strategy] = path.name
    search = {"budget": budget, "tasks": len(tasks), "files": files, "model": ctx.cfg.model, "env": ctx.cfg.env.name, "seed": ctx.seed}
    return {"runs": {}, "search": search}
