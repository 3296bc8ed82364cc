"""LEAFE stage 2 data: the counterfactual set D_cf and the rehearsal set D_reh, as
OpenRLHF SFT JSON Lines ({"prompt": [messages], "response": [assistant message]}).

D_cf: for each branch, the ORIGINAL experience-free history h_tau (the prompt the
policy saw before its mistake) with the revised action a'_tau as the target. The
experience is dropped, so the recovery becomes part of the policy rather than of
the prompt. Up to `cf_per_task` per task, in breadth-first order, by default only
from branches that went on to succeed (the branch, or a deeper branch that kept
a'_tau in its prefix).

D_reh: every (h_t, a_t) step of a random `reh_fraction` of the successful rollouts,
branched ones included, also without experience. Each rollout's draw is seeded by
(seed, task, node), so the selection does not depend on file order.

Leakage: an action taken with the experience in its prompt is the model's raw output,
Thought included, and a Thought can quote the experience, which would then reach D_cf
targets and later histories (D_reh too) although the experience is meant to be removed.
A span of at least `leak_min_words` consecutive words of the node's experience inside
such an action counts as a leak (a paraphrase that shares no such span does not). Every
leak is counted in distill_stats.json; `leak` says what to do with them: `keep` them,
`strip` the quoted spans from the action wherever it appears (targets and histories),
or `drop` the D_cf and D_reh records whose prompt or target holds one.

Output files (OpenRLHF SFT records, with `task`, `node` and `tau`/`step` beside them):
sft_cf.jsonl, sft_reh.jsonl, and distill_stats.json (the `DistillStats` fields).
"""

from __future__ import annotations

import json
import random
import re
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from leafe_recipe.prompts import build_messages
from leafe_recipe.records import read_jsonl, write_jsonl
from leafe_recipe.rollout import task_key


LEAK_POLICIES = ("keep", "strip", "drop")


@dataclass(frozen=True)
class DistillConfig:
    """method.distill (hydra_conf/method/leafe.yaml holds every value), with the run's history window and seed."""

    cf_per_task: int
    cf_only_successful: bool
    reh_fraction: float
    history_window: int | None  # the window the policy is trained and evaluated with
    seed: int
    leak: str  # what to do with actions that quote their experience: keep | strip | drop
    leak_min_words: int  # consecutive words of the experience that make a quote

    def __post_init__(self) -> None:
        if self.leak not in LEAK_POLICIES:
            raise ValueError(f"distill leak policy must be one of {', '.join(LEAK_POLICIES)}, got {self.leak!r}")
        if self.leak_min_words < 1:
            raise ValueError(f"leak_min_words must be at least 1, got {self.leak_min_words}")


@dataclass
class DistillStats:
    trees: int = 0
    branches: int = 0
    cf_candidates: int = 0  # branches eligible for D_cf (successful ones by default)
    cf: int = 0
    successful_rollouts: int = 0
    reh_rollouts: int = 0
    reh: int = 0
    experienced_actions: int = 0  # actions taken with an experience in the prompt
    leaking_actions: int = 0  # ... of which quote it (a span of leak_min_words words)
    cf_leaks: int = 0  # D_cf targets that quote their experience (before the leak policy)
    cf_leak_share: float | None = None  # cf_leaks / D_cf targets considered
    reh_leaks: int = 0  # D_reh records whose prompt or target quotes an experience (before the policy)
    leak_policy: str = "strip"
    dropped_for_leaks: int = 0  # records the `drop` policy removed


def went_on_to_succeed(nodes: list[dict[str, Any]], node: dict[str, Any]) -> bool:
    """Did `node` succeed, or a deeper branch whose prefix still holds node's revised action?"""
    if node["success"]:
        return True
    return any(
        child["parent"] == node["id"] and child["tau"] > node["tau"] and went_on_to_succeed(nodes, child)
        for child in nodes
    )


def sft_record(
    system: str, observations: list[str], actions: list[str], step: int, window: int | None, /, **meta: Any
) -> dict[str, Any]:
    """The experience-free prompt before action `step` (1-based) and that action as the response."""
    prompt = build_messages(system, observations[:step], actions[: step - 1], window)
    response = [{"role": "assistant", "content": actions[step - 1]}]
    return {"prompt": prompt, "response": response, **meta}


_WORD = re.compile(r"\w+")


def quoted_spans(text: str, experience: str, min_words: int) -> list[tuple[int, int]]:
    """Character spans of `text` that reproduce `min_words` or more consecutive words of
    `experience` (case-insensitive; punctuation and spacing ignored), merged."""
    exp = [w.lower() for w in _WORD.findall(experience)]
    grams = {tuple(exp[i : i + min_words]) for i in range(len(exp) - min_words + 1)}
    if not grams:
        return []
    words = list(_WORD.finditer(text))
    lowered = [w.group().lower() for w in words]
    covered = [False] * len(words)
    for i in range(len(words) - min_words + 1):
        if tuple(lowered[i : i + min_words]) in grams:
            covered[i : i + min_words] = [True] * min_words
    spans: list[tuple[int, int]] = []
    for i, w in enumerate(words):
        if covered[i]:
            if spans and (i > 0 and covered[i - 1]):
                spans[-1] = (spans[-1][0], w.end())
            else:
                spans.append((w.start(), w.end()))
    return spans


def strip_spans(text: str, spans: list[tuple[int, int]]) -> str:
    """`text` without `spans`, its spacing tidied where they were."""
    for start, end in reversed(spans):
        text = text[:start].rstrip(" \t") + " " + text[end:].lstrip(" \t")
    return re.sub(r" +([.,;:!?])", r"\1", text).strip(" ")


@dataclass
class _Clean:
    """A node's actions as distillation uses them, and which of them quote an experience."""

    actions: list[str]
    leaks: list[bool]


def _cleaned(nodes: list[dict[str, Any]], config: DistillConfig, stats: DistillStats) -> dict[int, _Clean]:
    """Per node: its actions, an ancestor's prefix included, with the leak policy applied."""
    out: dict[int, _Clean] = {}
    for n in sorted(nodes, key=lambda n: n["depth"]):  # parents first
        if n["parent"] is None:
            prefix = _Clean([], [])
        else:
            parent = out[n["parent"]]
            prefix = _Clean(parent.actions[: n["tau"] - 1], parent.leaks[: n["tau"] - 1])
        actions, leaks = list(prefix.actions), list(prefix.leaks)
        for step in range(len(prefix.actions) + 1, len(n["actions"]) + 1):
            text = n["actions"][step - 1]
            leak = False
            if step in n["experience_steps"] and n["experience"]:
                stats.experienced_actions += 1
                spans = quoted_spans(text, n["experience"], config.leak_min_words)
                leak = bool(spans)
                stats.leaking_actions += leak
                if leak and config.leak == "strip":
                    text = strip_spans(text, spans)
            actions.append(text)
            leaks.append(leak)
        out[n["id"]] = _Clean(actions, leaks)
    return out


def _visible(flags: list[bool], step: int, window: int | None) -> list[bool]:
    """The flags of the actions a record for `step` shows: its history window and its target."""
    return flags[: step] if window is None else flags[max(0, step - 1 - window) : step]


def distill(trees_path: str | Path, system_prompt: str, config: DistillConfig, out_dir: str | Path) -> DistillStats:
    """Write sft_cf.jsonl, sft_reh.jsonl and distill_stats.json to `out_dir`."""
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    stats = DistillStats(leak_policy=config.leak)
    cf: list[dict[str, Any]] = []
    reh: list[dict[str, Any]] = []
    cf_considered = 0
    for tree in read_jsonl(trees_path):
        stats.trees += 1
        key = task_key(tree)
        nodes = tree["nodes"]
        clean = _cleaned(nodes, config, stats)
        branches = [n for n in nodes if n["tau"] is not None]
        stats.branches += len(branches)
        eligible = [n for n in branches if not config.cf_only_successful or went_on_to_succeed(nodes, n)]
        stats.cf_candidates += len(eligible)
        for n in sorted(eligible, key=lambda n: (n["depth"], n["id"]))[: config.cf_per_task]:
            c, tau = clean[n["id"]], n["tau"]
            cf_considered += 1
            stats.cf_leaks += c.leaks[tau - 1]
            if config.leak == "drop" and any(_visible(c.leaks, tau, config.history_window)):
                stats.dropped_for_leaks += 1
                continue
            cf.append(sft_record(system_prompt, n["observations"], c.actions, tau, config.history_window, task=key, node=n["id"], tau=tau))
        for n in nodes:
            if not n["success"]:
                continue
            stats.successful_rollouts += 1
            if random.Random(f"{config.seed}/{key}/{n['id']}").random() >= config.reh_fraction:
                continue
            stats.reh_rollouts += 1
            c = clean[n["id"]]
            for step in range(1, len(n["actions"]) + 1):
                if any(_visible(c.leaks, step, config.history_window)):
                    stats.reh_leaks += 1
                    if config.leak == "drop":
                        stats.dropped_for_leaks += 1
                        continue
                reh.append(sft_record(system_prompt, n["observations"], c.actions, step, config.history_window, task=key, node=n["id"], step=step))
    stats.cf, stats.reh = len(cf), len(reh)
    stats.cf_leak_share = stats.cf_leaks / cf_considered if cf_considered else None
    write_jsonl(out_dir / "sft_cf.jsonl", cf)
    write_jsonl(out_dir / "sft_reh.jsonl", reh)
    (out_dir / "distill_stats.json").write_text(json.dumps(asdict(stats), indent=2))
    return stats
