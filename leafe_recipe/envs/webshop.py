"""WebShop (Yao et al. 2022, princeton-nlp/WebShop) behind the Env protocol, played in
process through its text environment (`web_agent_site.envs.WebAgentTextEnv`).

WebShop is not vendored: its product catalogue and instructions are downloaded from Google
Drive by its own setup script, and its search index is built with Java (pyserini); install
it as its README says (`git clone https://github.com/princeton-nlp/WebShop; cd WebShop;
./setup.sh -d all`, or `-d small` for 1,000 products), then make `web_agent_site`
importable (`pip install -e .` in that folder, or `PYTHONPATH`) and run from a working
directory where its `data/` and `search_engine/` are, or set `env.kwargs.root` to the
WebShop folder. Without it, `make` and `tasks` stop with these instructions.

Tasks: the human instructions, indexed as in the WebShop paper's code: test = the first
500, validation = 500-1499 (its dev), train = the rest. WebShop draws product prices and each goal's price
limit with Python's unseeded `random`; the environment seeds it (`seed`) right before it
builds the simulator, so every process sees the same goals. Observations are WebShop's
"text" pages (parts separated by ` [SEP] `), shown one part per line, followed by the
actions available on the page (`search[<query>]` where there is a search bar,
`click[<button>]` for each clickable), as verl-agent's WebShop prompt lists them. Actions:
the last `search[...]` or `click[...]` of a ReAct answer. The episode ends at `click[buy
now]` (reward = WebShop's score in [0, 1], success = 1.0) or after `max_steps` (15, as
verl-agent and ReAct).
"""

from __future__ import annotations

import hashlib
import os
import random
import re
from typing import Any

from leafe_recipe.envs.base import EnvFamily, EnvUnavailable, Step, Task, register

SPLITS = {"test": (0, 500), "validation": (500, 1500), "train": (1500, None)}  # goal indices (WebShop's test, dev, train)
INSTALL = (
    "WebShop is not installed here. It is not on PyPI and its data come from Google Drive (its licence: "
    "princeton-nlp/WebShop's LICENSE.md): git clone https://github.com/princeton-nlp/WebShop && cd WebShop && "
    "./setup.sh -d all (or -d small), pip install -e . ; then set env.kwargs.root=/path/to/WebShop"
)

SYSTEM_PROMPT = (
    "You are an agent shopping on WebShop, a simulated online store, for a product that matches the instruction. "
    "Each turn you see the current page and the actions available on it; reply with a short Thought, then exactly "
    "one Action: search[<query>] or click[<button>]."
)

_COMMAND = re.compile(r"(search|click)\s*\[([^\]]*)\]", re.IGNORECASE)


def parse_action(text: str) -> str | None:
    """The last `search[...]` / `click[...]` of an answer, normalised (`click` arguments lower-cased,
    as WebShop's clickables are); None when there is none or its argument is empty."""
    found = _COMMAND.findall(text)
    if not found:
        return None
    verb, argument = found[-1][0].lower(), found[-1][1].strip()
    if not argument:
        return None
    return f"{verb}[{argument.lower() if verb == 'click' else argument}]"


def available(info: dict[str, Any]) -> list[str]:
    """WebShop's get_available_actions() as the actions an answer may give."""
    return (["search[<your query>]"] if info.get("has_search_bar") else []) + [f"click[{c}]" for c in info.get("clickables", [])]


def render(page: str, actions: list[str], steps_left: int) -> str:
    """A text page (` [SEP] `-separated parts) one part per line, then the available actions."""
    parts = [p.strip() for p in page.split("[SEP]") if p.strip()]
    listed = "\n".join(actions)
    return "\n".join(parts) + f"\n\nAvailable actions:\n{listed}\nSteps left: {steps_left}"


def allowed(action: str, actions: list[str]) -> bool:
    if action.startswith("search["):
        return "search[<your query>]" in actions
    return action in actions


_SERVERS: dict[tuple, Any] = {}  # per process and settings, the one simulated store: it loads the catalogue


def _browser(root: str | None, num_products: int | None, file_path: str | None, seed: int, shared: bool = True):
    """A WebShop text browser (one session at a time) on the process's shared store."""
    key = (root, num_products, file_path, seed)
    cwd = os.getcwd()
    try:
        if root:
            os.chdir(root)
        from web_agent_site.envs import WebAgentTextEnv  # noqa: PLC0415
    except ImportError as err:
        os.chdir(cwd)
        raise EnvUnavailable(f"{INSTALL} ({err})") from err
    try:
        kwargs: dict[str, Any] = {"observation_mode": "text", "num_products": num_products, "human_goals": True}
        if file_path:
            kwargs["file_path"] = file_path
        if key in _SERVERS:
            return WebAgentTextEnv(server=_SERVERS[key], **kwargs)
        random.seed(seed)  # prices and goal price limits are drawn from `random` while the store is built
        browser = WebAgentTextEnv(**kwargs)
        _SERVERS[key] = browser.server
        return browser
    finally:
        os.chdir(cwd)


class WebShopEnv:
    def __init__(self, max_steps: int, root: str | None, num_products: int | None, file_path: str | None, seed: int) -> None:
        self.max_steps = int(max_steps)
        self._sim = _browser(root, num_products, file_path, seed)
        self._steps, self._done, self._actions = 0, True, []

    def _view(self, page: str) -> str:
        self._actions = available(self._sim.get_available_actions())
        return render(page, self._actions, self.max_steps - self._steps)

    def reset(self, task: Task) -> str:
        page, _ = self._sim.reset(session=int(task.data["goal"]))
        self._steps, self._done = 0, False
        return self._view(page)

    def step(self, action: str) -> Step:
        if self._done:
            raise RuntimeError("WebShopEnv.step called before reset(task) or after the episode ended")
        self._steps += 1
        command = parse_action(action)
        reward, done = 0.0, False
        if command is None or not allowed(command, self._actions):
            why = "no search[...] or click[...] found" if command is None else f"{command} is not available on this page"
            observation = f"Invalid action: {why}.\n\n" + render("", self._actions, self.max_steps - self._steps)
        else:
            page, reward, done, _ = self._sim.step(command)
            observation = self._view(page)
        success = done and reward == 1.0
        self._done = done or self._steps >= self.max_steps
        return Step(observation, float(reward if done else 0.0), self._done, success, {"invalid": command is None, "action": command})

    def valid_actions(self) -> list[str]:
        return [a for a in self._actions if a != "search[<your query>]"]

    def close(self) -> None:
        """The store is shared by the process's environments (see _SERVERS)."""


def webshop_tasks(split: str, n: int | None, root: str | None, num_products: int | None, file_path: str | None, seed: int) -> list[Task]:
    if split not in SPLITS:
        raise ValueError(f"unknown WebShop split {split!r}; splits: {', '.join(SPLITS)}")
    goals = _browser(root, num_products, file_path, seed).server.goals
    start, end = SPLITS[split]
    end = len(goals) if end is None else min(end, len(goals))
    indices = range(start, end if n is None else min(end, start + n))
    return [Task("webshop", f"{split}-{i}", {"goal": i, "instruction": goals[i]["instruction_text"],
                                               "attributes": sorted(goals[i].get("attributes") or [])}) for i in indices]  # fmt: skip


def webshop_fingerprint(task: Task) -> dict[str, str]:
    """The goal: its instruction and attributes, lower case, whitespace collapsed (WebShop's goals
    repeat instructions across indices)."""
    text = " ".join(task.data["instruction"].lower().split()) + "|" + "|".join(task.data["attributes"])
    return {"goal": hashlib.sha256(text.encode()).hexdigest()[:16]}


register(
    "webshop",
    EnvFamily(
        make=WebShopEnv,
        tasks=webshop_tasks,
        system_prompt=SYSTEM_PROMPT,
        valid_actions=lambda env: env.valid_actions(),
        action_key=parse_action,
        fingerprint=webshop_fingerprint,
    ),
)
