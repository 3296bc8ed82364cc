"""ALFWorld (Shridhar et al. 2021) text games behind the Env protocol, played with TextWorld.

Install: `pip install -e '.[alfworld]'` (TextWorld with its PDDL engine) and `pip install
--no-deps alfworld==0.3.5` (the Makefile does both): the 0.3.x command grammar (`put X in/on
Y`) that ALFWorld's released games and ReAct-style prompts use; 0.4.x changed it, and its
expert does not speak the old one. Only the text-game parts of alfworld are imported (its
package `__init__` would import the 3D simulator's OpenCV).

Data: an `$ALFWORLD_DATA` root (`env.tasks.data`, else the environment variable) with
`json_2.1.1/<split>/<task>/<trial>/game.tw-pddl`. Splits: test = `valid_unseen` (134 games,
the paper's out-of-distribution set), validation = `valid_seen` (140), train = `train` of the
full download (ALFWorld's own instructions, `alfworld-download`), or, where only the evaluation
games are at hand (this project's tests, ../shared/data/alfworld), the 140 seen games carved by
content into train and validation (`CARVE_OUT`). Games are listed sorted (ALFWorld's own loader walks the directory in
an unspecified order). The six task types (from the game's folder) are in `data["group"]`,
so evaluations report them separately and together.

Observations: the room and the task ("Your task is to: ..."), then each command's result,
each followed by the admissible commands, as ReAct recipes for ALFWorld list them. Actions:
`Action: <command>` in a ReAct answer; a command that is not admissible gets TextWorld's
answer ("Nothing happens.") and counts as invalid. An episode ends when the game is won
(success, reward 1) or after `max_steps` (50, verl-agent's ALFWorld setting). The expert is
ALFWorld's hand-coded one (it chooses where to search at random: seeded per task); replay is
exactly deterministic. Loading a game costs about a second and TextWorld leaks a few MB per
new environment, so an environment keeps one TextWorld game engine and loads each task's game
into it; environments run in worker processes (`processes`), at most `max_live`.
"""

from __future__ import annotations

import glob
import hashlib
import json
import os
import random
import re
import sys
import types
import zlib
from pathlib import Path
from typing import Any

from leafe_recipe.envs.base import EnvFamily, EnvUnavailable, Step, Task, needs_extra, register

SPLITS = {"train": "train", "validation": "valid_seen", "test": "valid_unseen"}
CARVE_OUT = 5  # with only the evaluation games at hand, every game whose fingerprint hash is 0 mod 5 is validation
TASK_TYPES = (
    "pick_and_place_simple", "look_at_obj_in_light", "pick_clean_then_place_in_recep",
    "pick_heat_then_place_in_recep", "pick_cool_then_place_in_recep", "pick_two_obj_and_place",
)  # fmt: skip
SYSTEM_PROMPT = (
    "You are an agent in a household (ALFWorld, a text game). Each turn you see the result of your last command "
    "and the commands you can give; reply with a short Thought, then exactly one Action: <command>."
)
_ACTION = re.compile(r"Action\s*:\s*(.+)", re.IGNORECASE)
_WELCOME = re.compile(r"^-= Welcome to TextWorld, ALFRED! =-\s*", re.MULTILINE)


def parse_action(text: str) -> str | None:
    """The command of a ReAct answer: what follows its last 'Action:', lower-cased."""
    found = _ACTION.findall(text)
    command = found[-1].strip().strip("`'\".").strip().lower() if found else ""
    return command or None


def _textworld():
    """textworld and alfworld's text-game wrappers, without alfworld's 3D-simulator imports."""
    try:
        import alfworld.agents
        import textworld
    except ImportError as err:
        raise needs_extra("alfworld", "alfworld (0.3.5, with textworld[pddl]==1.7.0)", err) from err
    package = "alfworld.agents.environment"
    if package not in sys.modules:  # its __init__ imports the THOR environment (OpenCV)
        stub = types.ModuleType(package)
        stub.__path__ = [os.path.join(os.path.dirname(alfworld.agents.__file__), "environment")]
        sys.modules[package] = stub
    from alfworld.agents.environment.alfred_tw_env import AlfredDemangler, AlfredExpert, AlfredInfos

    return textworld, AlfredDemangler, AlfredInfos, AlfredExpert


class _KeepArgv:
    """TextWorld's PDDL loader overwrites sys.argv (fast_downward's translator); put it back."""

    def __enter__(self) -> None:
        self.argv = list(sys.argv)

    def __exit__(self, *exc: object) -> None:
        sys.argv[:] = self.argv


def _engine(gamefile: str, expert: bool):
    textworld, demangler, infos, expert_wrapper = _textworld()
    request = textworld.EnvInfos(won=True, admissible_commands=True, extras=["gamefile"] + (["expert_plan"] if expert else []))
    wrappers = [demangler(shuffle=False), infos] + ([expert_wrapper(expert_type="handcoded")] if expert else [])
    with _KeepArgv():
        return textworld.start(gamefile, request_infos=request, wrappers=wrappers)


def _seed(task: Task) -> int:
    return zlib.crc32(task.id.encode())


class AlfWorldEnv:
    def __init__(self, max_steps: int) -> None:
        self.max_steps = int(max_steps)
        self._engine = None
        self._game: str | None = None
        self._done, self._steps, self._admissible = True, 0, []

    def _load(self, task: Task) -> Any:
        game = task.data["game"]
        if not Path(game).exists():
            raise EnvUnavailable(f"ALFWorld game file {game} not found (set env.tasks.data or $ALFWORLD_DATA to the data root)")
        with _KeepArgv():
            if self._engine is None:
                self._engine = _engine(game, expert=False)
            elif self._game != game:
                self._engine.load(game)
            self._game = game
            random.seed(_seed(task))
            return self._engine.reset()

    def _view(self, feedback: str, state: Any) -> str:
        self._admissible = [c for c in state["admissible_commands"] if c not in ("look", "inventory")] + ["look", "inventory"]
        commands = ", ".join(self._admissible)
        return f"{feedback.strip()}\n\nAdmissible commands: {commands}.\nSteps left: {self.max_steps - self._steps}"

    def reset(self, task: Task) -> str:
        state = self._load(task)
        self._done, self._steps = False, 0
        intro = (
            "Answer with your reasoning, then one command, in this format:\nThought: <your reasoning>\n"
            f"Action: <command>\nYou have {self.max_steps} actions.\n\n"
        )
        return intro + self._view(_WELCOME.sub("", state["feedback"]), state)

    def step(self, action: str) -> Step:
        if self._done:
            raise RuntimeError("AlfWorldEnv.step called before reset(task) or after the episode ended")
        self._steps += 1
        command = parse_action(action)
        invalid = command is None or command not in self._admissible
        if command is None:
            feedback, state, won = "Invalid action: no command found. End your reply with 'Action: <command>'.", None, False
        else:
            state, _, _ = self._engine.step(command)
            feedback, won = state["feedback"], bool(state["won"])
        self._done = won or self._steps >= self.max_steps
        if self._done and not won:
            feedback = feedback.strip() + " No steps left: the episode is over."
        observation = self._view(feedback, state) if state is not None else f"{feedback}\nSteps left: {self.max_steps - self._steps}"
        return Step(observation, 1.0 if won else 0.0, self._done, won, {"invalid": invalid, "command": command})

    def valid_actions(self) -> list[str]:
        return [f"Action: {c}" for c in self._admissible]

    def close(self) -> None:
        """TextWorld's PDDL engine releases nothing on close (and forcing it crashes): the
        worker process that holds it ends."""
        self._engine = None


def data_root(data: str | None) -> Path:
    root = data or os.environ.get("ALFWORLD_DATA")
    if not root:
        raise EnvUnavailable(
            "no ALFWorld data: set env.tasks.data (or $ALFWORLD_DATA) to a folder with json_2.1.1/ (ALFWorld's "
            "download, `alfworld-download`, or this project's ../shared/data/alfworld for the evaluation games)"
        )
    return Path(os.path.expandvars(os.path.expanduser(root)))


def alfworld_tasks(split: str, n: int | None, data: str | None, task_types: list[str] | None) -> list[Task]:
    """The first n games of a split, round-robin over its task types (sorted within each), so
    that a small n covers every type; optionally only `task_types`. Without the train games
    (only the evaluation ones at hand), the seen games are both pools, carved by content: a fixed
    fifth of them (by fingerprint, CARVE_OUT) is validation, the rest train."""
    if split not in SPLITS:
        raise ValueError(f"unknown ALFWorld split {split!r}; splits: {', '.join(SPLITS)}")
    root = data_root(data) / "json_2.1.1"
    folder = SPLITS[split]
    carve = None
    if split in ("train", "validation") and not (root / "train").is_dir():
        folder, carve = "valid_seen", split
    games = sorted(glob.glob(str(root / folder / "*" / "*" / "game.tw-pddl")))
    if not games:
        raise EnvUnavailable(f"no ALFWorld games under {root / folder} (expected <task>/<trial>/game.tw-pddl)")
    by_type: dict[str, list[Task]] = {}
    for game in games:
        group = Path(game).parent.parent.name.split("-")[0]
        if not task_types or group in task_types:
            name = f"{Path(game).parent.parent.name}/{Path(game).parent.name}"
            task = Task("alfworld", name, {"game": game, "group": group, "split": folder})
            if carve is None or (int(alfworld_fingerprint(task)["game"][:8], 16) % CARVE_OUT == 0) == (carve == "validation"):
                by_type.setdefault(group, []).append(task)
    queues = [by_type[t] for t in TASK_TYPES if t in by_type] + [v for k, v in sorted(by_type.items()) if k not in TASK_TYPES]
    tasks = [q[i] for i in range(max((len(q) for q in queues), default=0)) for q in queues if i < len(q)]
    return tasks if n is None else tasks[:n]


def alfworld_fingerprint(task: Task) -> dict[str, str]:
    """The game: its task type, objects, receptacles and room (the task folder's name, e.g.
    pick_and_place_simple-AlarmClock-None-Desk-307), not the trial (the same game, other placements)."""
    game = Path(task.data["game"]).parent.parent.name
    return {"game": hashlib.sha256(game.encode()).hexdigest()[:16]}


_EXPERT: dict[str, Any] = {}


def expert_answers(task: Task, max_steps: int = 200) -> list[str] | None:
    """ALFWorld's hand-coded expert played to the win (cached on disk per game), as answers."""
    from leafe_recipe import cache_dir

    path = cache_dir() / "alfworld-0.3.5-expert" / f"{zlib.crc32(task.data['game'].encode()):08x}-{_seed(task)}.json"
    if path.exists():
        commands = json.loads(path.read_text())
    else:
        with _KeepArgv():
            if "engine" not in _EXPERT:
                _EXPERT["engine"] = _engine(task.data["game"], expert=True)
            else:
                _EXPERT["engine"].load(task.data["game"])
            engine = _EXPERT["engine"]
            random.seed(_seed(task))
            state, commands = engine.reset(), []
            while not state["won"] and len(commands) < max_steps:
                commands.append(state["extra.expert_plan"][0])
                state, _, _ = engine.step(commands[-1])
        if not state["won"]:
            return None
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(json.dumps(commands))
    return [f"Thought: The next step toward the task is to {c}.\nAction: {c}" for c in commands]


register(
    "alfworld",
    EnvFamily(
        make=AlfWorldEnv,
        tasks=alfworld_tasks,
        system_prompt=SYSTEM_PROMPT,
        expert=expert_answers,
        valid_actions=lambda env: env.valid_actions(),
        action_key=parse_action,
        processes=True,
        max_live=8,
        fingerprint=alfworld_fingerprint,
    ),
)
