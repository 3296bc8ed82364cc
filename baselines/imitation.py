"""method=imitation: behaviour cloning of the expert, the floor Early Experience must beat.

The expert's answers (`EnvFamily.expert`: Sokoban's solver plan, a coding task's reference
solution) are played on the train tasks; every step (h_t, a*_t), in the prompt the policy is
evaluated with (the history window, no experience), is one OpenRLHF SFT record, the format
of LEAFE's D_reh. Trained by the same OpenRLHF SFT launch as LEAFE, then evaluated like
every method. Expert demonstrations are not the agent's interaction: the ledger counts
them as `expert_steps`, and the method spends none of the interaction budget.
"""

from __future__ import annotations

from typing import Any

from leafe_recipe.context import RunContext
from leafe_recipe.distill import sft_record
from leafe_recipe.envs.base import EnvFamily, Task
from leafe_recipe.envs.pool import expert_trajectory
from leafe_recipe.evaluate import evaluate
from leafe_recipe.records import write_jsonl


class NoExpert(RuntimeError):
    """The environment family has no expert answers for these tasks."""


def expert_trajectories(
    family: EnvFamily, env_kwargs: dict[str, Any], tasks: list[Task], expert: dict[str, Any] | None = None
) -> list[tuple[Task, list[str], list[str]]]:
    """(task, observations, actions) for every task the expert solves, its answers written with
    the run's `expert` settings (env.expert); NoExpert if none."""
    found = [(t, *traj) for t in tasks if (traj := expert_trajectory(family, env_kwargs, t, expert)) is not None]
    if not found:
        raise NoExpert(
            f"no expert trajectory for any of the {len(tasks)} train tasks of this environment: imitation and "
            "Early Experience learn from the expert's answers (EnvFamily.expert), which this environment or its "
            "data does not give (coding tasks need a reference solution)"
        )
    return found


def expert_records(system: str, trajectories, window: int | None) -> list[dict[str, Any]]:
    """Every expert step as an SFT record: the prompt before it, the expert's answer as the target."""
    return [
        sft_record(system, observations, actions, step, window, task=f"{task.env}/{task.id}", step=step)
        for task, observations, actions in trajectories
        for step in range(1, len(actions) + 1)
    ]


def run(ctx: RunContext) -> dict[str, Any]:
    window = ctx.prompt.history_window
    tasks = ctx.tasks("train")
    trajectories = expert_trajectories(ctx.family, ctx.env_kwargs, tasks, ctx.expert)
    data = ctx.run_dir / "sft" / "sft_expert.jsonl"
    records = expert_records(ctx.family.system_prompt, trajectories, window)
    write_jsonl(data, records)
    print(f"[imitation] {len(records)} expert steps from {len(trajectories)} of {len(tasks)} train tasks", flush=True)
    runs = {"base": evaluate(ctx, ctx.init, "base")}
    checkpoint, budget = ctx.train_sft(ctx.sft(ctx.cfg.method.sft, ctx.init, [str(data)], ctx.run_dir / "checkpoint"), "imitation", tasks)
    runs["imitation"] = evaluate(ctx, str(checkpoint), "imitation")
    ledger = {"tasks": len(tasks), "env_steps": 0, "replay_steps": 0, "model_calls": 0, "gen_tokens": 0, "expert_steps": len(records), **budget}
    return {"runs": runs, "ledger": ledger, "data": {"expert_tasks": len(trajectories), "expert_records": len(records)}, "checkpoint": str(checkpoint)}
