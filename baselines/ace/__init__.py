"""method=ace: Agentic Context Engineering (Zhang et al. 2025, arXiv 2510.04618), the training-free
baseline: the frozen policy writes, curates and reads a playbook; no weight changes.

Offline adaptation on the train tasks, in rounds of `method.tasks_per_round` tasks, until each
task's share of the interaction budget is spent:

- Generator: the policy plays the task with the current playbook in its system prompt
  (`prompts.with_playbook`, as the evaluation places it);
- Reflector: the policy reads the attempt (every action and feedback, the outcome, the
  playbook) and answers JSON: error, root cause, correct approach, key insight, and tags the
  entries it judges helpful or harmful;
- Curator: the policy reads the playbook and the round's reflections and answers JSON
  operations (ADD an entry to a section); they are merged deterministically: duplicates are
  skipped, counts updated from the tags, and (beyond the released code, which only adds)
  entries judged harmful by `method.harmful_margin` more than helpful are dropped, then the
  lowest-scoring ones until the playbook fits `method.max_entries` entries and
  `method.max_words` words.

The playbook is a plain file, versioned per round (playbook/round_<r>.md; playbook/final.md).
Evaluation: the start model with the final playbook in the prompt of the environment's lm-eval
task (the task argument `--metadata '{"playbook": FILE}'`, so `leafe-eval` evaluates any
checkpoint with any playbook). `method.init` starts from another model: the paper ran ACE on
its GRPO model. The ledger counts the adaptation's environment steps, model calls (generator,
reflector, curator) and tokens against the same budget as every method.
"""

from __future__ import annotations

import dataclasses
import json
import time
from pathlib import Path
from typing import Any

from baselines.ace.playbook import Playbook
from leafe_recipe import tracking
from leafe_recipe.context import RunContext, plain
from leafe_recipe.envs.base import EnvFamily, Task
from leafe_recipe.evaluate import evaluate
from leafe_recipe.prompts import Message, with_playbook
from leafe_recipe.records import JsonlWriter, claim, write_json
from leafe_recipe.rollout import run_episodes
from leafe_recipe.train import NEW_FOLDER

REFLECTOR_SYSTEM = (
    "You are the Reflector. You read an agent's attempt at a task, with the playbook of strategies it was given, "
    "and diagnose what went right or wrong."
)
REFLECTOR_REQUEST = """{outcome}

Playbook entries it could use:
{playbook}

Answer with one JSON object and nothing else:
{{"reasoning": "...", "error_identification": "...", "root_cause_analysis": "...", "correct_approach": "...",
"key_insight": "one sentence a future attempt should follow", "bullet_tags": [{{"id": "str-00001", "tag": "helpful|harmful|neutral"}}]}}"""

CURATOR_SYSTEM = (
    "You are the Curator. You keep a playbook of short, reusable strategies for an agent. You add only what "
    "is new and useful, never repeat an entry, and write each entry as one sentence."
)
CURATOR_REQUEST = """Current playbook:
{playbook}

Reflections on recent attempts:
{reflections}

Add at most {max_new} entries. Answer with one JSON object and nothing else:
{{"reasoning": "...", "operations": [{{"type": "ADD", "section": "strategies|mistakes|facts", "content": "..."}}]}}"""


class AceError(ValueError):
    """ACE is misconfigured; the message says what to change."""


def _json_object(text: str) -> dict[str, Any] | None:
    start, end = text.find("{"), text.rfind("}")
    if start < 0 or end <= start:
        return None
    try:
        obj = json.loads(text[start : end + 1])
    except json.JSONDecodeError:
        return None
    return obj if isinstance(obj, dict) else None


def parse_reflection(text: str) -> dict[str, Any] | None:
    """The Reflector's answer: its fields and its tags, or None when it is not the JSON asked for."""
    obj = _json_object(text)
    if obj is None or not isinstance(obj.get("key_insight"), str):
        return None
    tags = [t for t in obj.get("bullet_tags") or [] if isinstance(t, dict) and isinstance(t.get("id"), str)]
    keys = ("error_identification", "root_cause_analysis", "correct_approach", "key_insight")
    return {**{k: str(obj.get(k, "")) for k in keys}, "bullet_tags": [{"id": t["id"], "tag": str(t.get("tag"))} for t in tags]}


def parse_operations(text: str) -> list[dict[str, str]] | None:
    """The Curator's ADD operations, or None when the answer is not the JSON asked for."""
    obj = _json_object(text)
    if obj is None or not isinstance(obj.get("operations"), list):
        return None
    return [{"section": str(op.get("section", "strategies")), "content": str(op["content"])}
            for op in obj["operations"] if isinstance(op, dict) and op.get("type", "ADD") == "ADD" and isinstance(op.get("content"), str)]  # fmt: skip


def reflector_prompt(observations: list[str], actions: list[str], success: bool, playbook: Playbook) -> list[Message]:
    steps = "\n\n".join(f"Step {i}\nAction: {a}\nFeedback: {o}" for i, (a, o) in enumerate(zip(actions, observations[1:]), start=1))
    outcome = f"The attempt {'succeeded' if success else 'failed'} after {len(actions)} steps."
    request = REFLECTOR_REQUEST.format(outcome=outcome, playbook=playbook.render() or "(empty)")
    return [{"role": "system", "content": REFLECTOR_SYSTEM}, {"role": "user", "content": f"Task:\n{observations[0]}\n\n{steps}\n\n{request}"}]


def curator_prompt(playbook: Playbook, reflections: list[dict[str, Any]], max_new: int) -> list[Message]:
    lines = "\n".join(f"- {r['key_insight']} (correct approach: {r['correct_approach']})" for r in reflections)
    request = CURATOR_REQUEST.format(playbook=playbook.render() or "(empty)", reflections=lines or "(none)", max_new=max_new)
    return [{"role": "system", "content": CURATOR_SYSTEM}, {"role": "user", "content": request}]


def adapt(
    tasks: list[Task], family: EnvFamily, env_kwargs: dict[str, Any], policy, m: Any, act, reflect, window: int | None,
    budget: int, folder: Path, max_concurrent: int = 256,
) -> tuple[Playbook, dict[str, Any]]:  # fmt: skip
    """The offline adaptation (module docstring). Tasks are attempted in turn, `tasks_per_round`
    a round, while their budget lasts (an attempt starts while a step is left, so a task may
    overspend by one episode; the ledger says what was spent)."""
    folder.mkdir(parents=True, exist_ok=True)
    ledger = {"tasks": len(tasks), "env_steps": 0, "replay_steps": 0, "model_calls": 0, "gen_tokens": 0, "rounds": 0,
              "reflections": 0, "reflections_unparsed": 0, "curations_unparsed": 0, "added": 0, "dropped": 0}  # fmt: skip
    book, spent = Playbook(), {t.id: 0 for t in tasks}
    (folder / "round_0.md").write_text("")
    queue = list(tasks)
    with JsonlWriter(folder / "rounds.jsonl", key=lambda r: str(r["round"])) as writer:
        while queue:
            batch, queue = queue[: m.tasks_per_round], queue[m.tasks_per_round :]
            episodes = list(run_episodes([(t, 0) for t in batch], _with_system(family, with_playbook(family.system_prompt, book.render())),
                                         env_kwargs, policy, act, window, max_concurrent))  # fmt: skip
            outs = policy.generate([reflector_prompt(e.observations, e.actions, e.success, book) for e in episodes],
                                   [reflect.for_request("ace reflect", e.task.env, e.task.id) for e in episodes])  # fmt: skip
            reflections = []
            for out in outs:
                parsed = parse_reflection(out.text)
                if parsed is None:
                    ledger["reflections_unparsed"] += 1
                    continue
                reflections.append(parsed)
                for tag in parsed["bullet_tags"]:
                    book.tag(tag["id"], tag["tag"])
            curate = reflect.for_request("ace curate", ledger["rounds"])
            curation = policy.generate([curator_prompt(book, reflections, m.max_new_entries)], curate)[0] if reflections else None
            operations = parse_operations(curation.text) if curation is not None else []
            if operations is None:
                ledger["curations_unparsed"] += 1
                operations = []
            added = [e for op in operations[: m.max_new_entries] if (e := book.add(op["section"], op["content"])) is not None]
            dropped = book.prune(m.max_entries, m.max_words, m.harmful_margin)
            calls = [*outs, *([curation] if curation is not None else [])]
            ledger["env_steps"] += sum(len(e.actions) for e in episodes)
            ledger["model_calls"] += sum(len(e.actions) for e in episodes) + len(calls)
            ledger["gen_tokens"] += sum(e.gen_tokens for e in episodes) + sum(c.num_tokens for c in calls)
            ledger["rounds"] += 1
            ledger["reflections"] += len(outs)
            ledger["added"] += len(added)
            ledger["dropped"] += len(dropped)
            for e in episodes:
                spent[e.task.id] += len(e.actions)
            queue += [t for t in batch if spent[t.id] < budget]  # the next pass, while the task's budget lasts
            (folder / f"round_{ledger['rounds']}.md").write_text(book.render())
            writer.write({"round": ledger["rounds"], "tasks": [t.id for t in batch], "steps": [len(e.actions) for e in episodes],
                          "successes": sum(e.success for e in episodes), "added": [e.id for e in added],
                          "dropped": [e.id for e in dropped], "entries": len(book.entries)})  # fmt: skip
            tracking.log("ace", {"entries": len(book.entries), "successes": sum(e.success for e in episodes), **ledger})
    (folder / "final.md").write_text(book.render())
    return book, ledger


def _with_system(family: EnvFamily, system: str) -> EnvFamily:
    return dataclasses.replace(family, system_prompt=system)


def run(ctx: RunContext) -> dict[str, Any]:
    m = ctx.cfg.method
    if m.max_entries < 1 or m.tasks_per_round < 1 or m.max_new_entries < 1:
        raise AceError(f"method.max_entries, method.tasks_per_round and method.max_new_entries must be >= 1, got "
                       f"{m.max_entries}, {m.tasks_per_round}, {m.max_new_entries}")  # fmt: skip
    load = ctx.loader()
    tasks = ctx.tasks("train")
    folder, final = ctx.run_dir / "playbook", ctx.run_dir / "playbook" / "final.md"
    claim(final, ctx.key("ace", n_train=ctx.cfg.env.n_train, method=plain(m), budget=ctx.cfg.budget), NEW_FOLDER)
    if final.exists() and (folder / "ledger.json").exists():
        book, ledger = Playbook.parse(final.read_text()), json.loads((folder / "ledger.json").read_text())
        print(f"[ace] playbook already adapted: {final}", flush=True)
    else:
        start = time.monotonic()
        book, ledger = adapt(
            tasks, ctx.family, ctx.env_kwargs, load(), m, ctx.sampling(), ctx.sampling(m.reflection_sampling),
            ctx.prompt.history_window, ctx.cfg.budget, folder, ctx.cfg.max_concurrent,
        )  # fmt: skip
        write_json(folder / "ledger.json", ledger)
        print(f"[ace] {ledger['rounds']} rounds over {len(tasks)} train tasks: playbook of {len(book.entries)} entries "
              f"({ledger['added']} added, {ledger['dropped']} dropped; {ledger['reflections_unparsed']} of {ledger['reflections']} "
              f"reflections and {ledger['curations_unparsed']} curations unparsed); {ledger['env_steps']} env steps; "
              f"{time.monotonic() - start:.0f} s", flush=True)  # fmt: skip
    runs = {"base": evaluate(ctx, ctx.init, "base", load)}
    runs["ace"] = evaluate(ctx, ctx.init, "ace", load, playbook=final)
    return {"runs": runs, "ledger": ledger, "playbook": str(final), "entries": len(book.entries)}
