"""ScienceWorld (Wang et al. 2022; `scienceworld==1.2.3` from PyPI, which bundles its Java
simulator) behind the Env protocol, as a ReAct agent plays it.

Tasks: the simulator's 30 tasks and their variations, split by the simulator itself into
train / dev / test (3,592 / 1,796 / 1,819 variations; dev is our validation); `tasks(split, n)` takes the first n
of a split round-robin over the tasks, so a small n covers every task (the task name is the
variation's `data["group"]`: evaluations report each task and all of them). Observations: the
task description, then what `look around` shows; each step's feedback is the simulator's
answer. Actions: `Action: <command>` in a ReAct answer (the 25 command templates are listed
in the first observation; the valid object combinations, about 50 ms to build, only when a
method asks: `valid_actions`). Success is task completion (score 100); the score (0-100,
negative when the task is failed) is in `info["score"]`; an episode ends at success,
failure or `max_steps` agent steps (the simulator's own limit counts clock ticks, and some
gold paths exceed its default, so it is set far above).

Each environment is a JVM (about 0.4 GB with the 512 MB heap used here, 1.1 GB with Java's
default), so the family runs each in a worker process and keeps at most `max_live` of them.
Replay is not exact in 1.2.3 (Scala hash-set order: room listings come out in another
order, a thermometer can read 18 then 19 degrees on the same actions): `canonical` compares
observations with listed items sorted and measurement readings masked, and a branch that
still diverges is dropped and counted (explore.py).
"""

from __future__ import annotations

import json
import os
import re
from pathlib import Path

from leafe_recipe.envs.base import EnvFamily, Step, Task, needs_extra, register

SPLITS = {"train": "train", "validation": "dev", "test": "test"}  # ours -> the simulator's
TICK_LIMIT = 100_000  # the simulator's own step limit (clock ticks): never the binding one

SYSTEM_PROMPT = (
    "You are an agent in ScienceWorld, a text simulation of elementary science experiments. Each turn you see "
    "the result of your last command; reply with a short Thought, then exactly one Action: <command>."
)

_ACTION = re.compile(r"Action\s*:\s*(.+)", re.IGNORECASE)


def _simulator():
    try:
        import scienceworld
    except ImportError as err:
        raise needs_extra("scienceworld", "scienceworld", err) from err
    return scienceworld


def _start(heap_mb: int):
    """A ScienceWorld simulator (its own JVM), with the given heap."""
    os.environ["JAVA_TOOL_OPTIONS"] = f"-Xmx{int(heap_mb)}m"  # read by the JVM this process starts
    return _simulator().ScienceWorldEnv("", envStepLimit=TICK_LIMIT)


def parse_action(text: str) -> str | None:
    """The command of a ReAct answer: what follows the last 'Action:' on its line."""
    found = _ACTION.findall(text)
    command = found[-1].strip().strip("`'\"").strip() if found else ""
    return command or None


class ScienceWorldEnv:
    def __init__(self, max_steps: int, heap_mb: int) -> None:
        self.max_steps, self.heap_mb = int(max_steps), int(heap_mb)
        self._sim = None
        self._steps = 0
        self._done = True

    def reset(self, task: Task) -> str:
        if self._sim is None:
            self._sim = _start(self.heap_mb)
        d = task.data
        self._sim.load(d["task"], int(d["variation"]), d.get("simplification", ""))
        look, _ = self._sim.reset()
        self._steps, self._done, self.score = 0, False, 0
        templates = ", ".join(self._sim.get_possible_actions())
        return (
            f"{self._sim.get_task_description()}\n\nCommands you can use: {templates}. Answer with your reasoning, "
            f"then one command, in this format:\nThought: <your reasoning>\nAction: <command>\nYou have "
            f"{self.max_steps} actions.\n\n{look.strip()}"
        )

    def step(self, action: str) -> Step:
        if self._done:
            raise RuntimeError("ScienceWorldEnv.step called before reset(task) or after the episode ended")
        self._steps += 1
        command = parse_action(action)
        if command is None:
            feedback = "Invalid action: no command found. End your reply with 'Action: <command>'."
            invalid = True
        else:
            feedback = self._sim.server.step(command).strip()
            invalid = feedback.startswith("No known action matches that input")
            self.score = int(round(100 * self._sim.server.getScore()))
        success = bool(self._sim.server.getCompleted()) and self.score >= 100
        failed = self.score < 0
        self._done = success or failed or self._steps >= self.max_steps
        if self._done and not (success or failed):
            feedback += " No steps left: the episode is over."
        return Step(
            observation=feedback,
            reward=1.0 if success else 0.0,
            done=self._done,
            success=success,
            info={"invalid": invalid, "score": self.score, "command": command},
        )

    def valid_actions(self) -> list[str]:
        """Every command the simulator accepts now, as answers (about 50 ms: only when asked)."""
        return [f"Action: {c}" for c in self._sim.get_valid_action_object_combinations()]

    def close(self) -> None:
        if self._sim is not None:
            _stop(self._sim)
            self._sim = None


def _stop(sim) -> None:
    """Shut a simulator's JVM down and wait for it."""
    sim.close()
    process = getattr(getattr(sim, "_gateway", None), "java_process", None)
    if process is not None:
        process.wait(timeout=10)
    sim.close = lambda: None  # its __del__ would close again and print a broken pipe


# --- replay --------------------------------------------------------------------------------

_READINGS = re.compile(r"(-?\d+(?:\.\d+)?)(?=\s*(?:degrees|seconds|minutes|percent|%|cm|meters|grams))", re.IGNORECASE)
_MENU_NUMBER = re.compile(r"^\d+:\t", re.MULTILINE)


def canonical(observation: str) -> str:
    """The observation with what 1.2.3 varies between runs of the same actions removed: the
    order of listed items (at every level of parentheses, and of indented lines) and the
    digits of measurement readings."""
    text = _MENU_NUMBER.sub("\t", re.sub(r" {2,}", " ", observation))
    text = _READINGS.sub("#", text)
    out, run = [], []
    for line in text.split("\n"):
        line = _sorted_items(line.rstrip())
        if line.startswith("\t") or line.startswith("(disconnecting"):
            run.append(line)
            continue
        out += sorted(run) + [line]
        run = []
    return "\n".join(out + sorted(run)).strip()


def _sorted_items(text: str) -> str:
    """Sort the ", "-separated items of `text`, inside every pair of parentheses first."""
    pieces, depth, start, inner = [], 0, 0, []
    for i, ch in enumerate(text):
        if ch == "(":
            if depth == 0:
                pieces.append(text[start:i])
                start = i + 1
            depth += 1
        elif ch == ")" and depth:
            depth -= 1
            if depth == 0:
                inner.append(len(pieces))
                pieces.append("(" + _sorted_items(text[start:i]) + ")")
                start = i + 1
    pieces.append(text[start:])
    flat = "".join(pieces)
    items = _split_top(flat)
    if len(items) < 2:
        return flat
    head = max((items[0].rfind(m) + len(m) for m in (": ", "containing ", "see ") if m in items[0]), default=0)
    prefix, items[0] = items[0][:head], items[0][head:]
    suffix = "." if items[-1].endswith(".") else ""
    items[-1] = items[-1][: len(items[-1]) - len(suffix)]
    return prefix + ", ".join(sorted(items)) + suffix


def _split_top(text: str) -> list[str]:
    items, depth, start = [], 0, 0
    for i, ch in enumerate(text):
        depth += (ch == "(") - (ch == ")")
        if depth == 0 and text.startswith(", ", i):
            items.append(text[start:i])
            start = i + 2
    return items + [text[start:]]


# --- tasks and the expert ------------------------------------------------------------------


def _cache() -> Path:
    from leafe_recipe import cache_dir

    version = getattr(_simulator(), "__version__", "1.2.3")
    path = cache_dir() / f"scienceworld-{version}"
    path.mkdir(parents=True, exist_ok=True)
    return path


def variations() -> dict[str, dict[str, list[int]]]:
    """{task: {split: [variation, ...]}}, read from the simulator once and cached."""
    path = _cache() / "variations.json"
    if path.exists():
        return json.loads(path.read_text())
    sim = _start(512)
    try:
        out = {}
        for name in sim.get_task_names():
            sim.load(name, 0, "")
            out[name] = {"train": sim.get_variations_train(), "dev": sim.get_variations_dev(), "test": sim.get_variations_test()}
    finally:
        _stop(sim)
    path.write_text(json.dumps(out))
    return out


def scienceworld_tasks(split: str, n: int | None, task_names: list[str] | None, simplification: str) -> list[Task]:
    """The first n (task, variation) pairs of a split, round-robin over the tasks (all 30, or
    `task_names`); `simplification` is the simulator's ("easy": teleporting, open doors, ...)."""
    if split not in SPLITS:
        raise ValueError(f"unknown ScienceWorld split {split!r}; splits: {', '.join(SPLITS)}")
    table = variations()
    names = list(task_names) if task_names else sorted(table)
    unknown = sorted(set(names) - set(table))
    if unknown:
        raise ValueError(f"unknown ScienceWorld tasks {unknown}; tasks: {', '.join(sorted(table))}")
    queues = [list(table[name][SPLITS[split]]) for name in names]
    tasks: list[Task] = []
    for i in range(max(len(q) for q in queues)):
        for name, queue in zip(names, queues):
            if i < len(queue) and (n is None or len(tasks) < n):
                data = {"task": name, "variation": queue[i], "simplification": simplification, "group": name}
                tasks.append(Task("scienceworld", f"{name}-{queue[i]}", data))
    return tasks


_GOLD_SIM = None


def gold_path(task: Task) -> list[str]:
    """The simulator's gold action sequence for a task (cached on disk: it takes up to half a
    minute on the longest tasks, and 1.2.3 may give a different but equally good one in another
    process)."""
    global _GOLD_SIM
    d = task.data
    path = _cache() / "gold" / f"{d['task']}-{d['variation']}-{d.get('simplification', '') or 'none'}.json"
    if path.exists():
        return json.loads(path.read_text())
    if _GOLD_SIM is None:
        _GOLD_SIM = _start(512)
    _GOLD_SIM.load(d["task"], int(d["variation"]), d.get("simplification", ""), generateGoldPath=True)
    actions = list(_GOLD_SIM.get_gold_action_sequence())
    getattr(_GOLD_SIM.server, "goldPathGenerationEnabled_$eq")(False)  # 1.2.3 would regenerate it at every reset
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(actions))
    return actions


def expert_answers(task: Task) -> list[str]:
    return [f"Thought: The next step of the experiment is to {action}.\nAction: {action}" for action in gold_path(task)]


def scienceworld_fingerprint(task: Task) -> dict[str, str]:
    """A task and its variation (the simulator's splits are disjoint by variation)."""
    return {"variation": f"{task.data['task']}-{task.data['variation']}"}


register(
    "scienceworld",
    EnvFamily(
        make=ScienceWorldEnv,
        tasks=scienceworld_tasks,
        system_prompt=SYSTEM_PROMPT,
        canonical=canonical,
        expert=expert_answers,
        valid_actions=lambda env: env.valid_actions(),
        action_key=parse_action,
        processes=True,
        max_live=8,
        fingerprint=scienceworld_fingerprint,
    ),
)
