import json

import pytest

from helpers import explore_config, distill_config
from leafe_recipe.distill import distill, went_on_to_succeed
from leafe_recipe.envs.base import get_family
from leafe_recipe.explore import explore
from leafe_recipe.policy import Sampling
from leafe_recipe.prompts import EXPERIENCE_HEADER, build_messages
from leafe_recipe.records import read_jsonl
from scripted import Scripted

SOKOBAN = get_family("sokoban")


@pytest.fixture(scope="module")
def trees(tmp_path_factory):
    """Three tasks; each root fails, and reflections at steps 2, 4 and 6 open three branches that succeed."""
    path = tmp_path_factory.mktemp("explore") / "trees.jsonl"
    config = explore_config(reflect_every=2, max_depth=1, max_branches=3, history_window=2)
    policy = Scripted(reflection="Rollback step: 2\nExperience: SECRET-FIX push the box toward the target")
    explore(SOKOBAN.tasks("train", 3), SOKOBAN, {"max_steps": 6}, policy, Sampling(), Sampling(), config, path)
    return path


def lines(path):
    return [json.loads(line) for line in path.read_text().splitlines()]


def test_cf_pairs_the_original_history_with_the_revised_action(trees, tmp_path):
    stats = distill(trees, SOKOBAN.system_prompt, distill_config(cf_per_task=1, history_window=2), tmp_path)
    cf = lines(tmp_path / "sft_cf.jsonl")
    assert stats.cf == len(cf) == 3 and stats.branches == 9
    for record, tree in zip(cf, read_jsonl(trees)):
        root, branch = tree["nodes"][0], tree["nodes"][record["node"]]
        assert record["tau"] == branch["tau"] == 2
        assert record["prompt"] == build_messages(SOKOBAN.system_prompt, root["observations"][:2], root["actions"][:1], 2)
        assert record["response"] == [{"role": "assistant", "content": branch["actions"][1]}]


def test_no_experience_text_reaches_any_training_input(trees, tmp_path):
    distill(trees, SOKOBAN.system_prompt, distill_config(cf_per_task=3, reh_fraction=1.0), tmp_path)
    records = lines(tmp_path / "sft_cf.jsonl") + lines(tmp_path / "sft_reh.jsonl")
    assert len(records) > 9
    for r in records:
        text = json.dumps(r["prompt"])
        assert "SECRET-FIX" not in text and EXPERIENCE_HEADER not in text


def test_cf_keeps_at_most_cf_per_task_breadth_first(trees, tmp_path):
    for k, want in [(0, 0), (2, 6), (3, 9), (10, 9)]:
        assert distill(trees, SOKOBAN.system_prompt, distill_config(cf_per_task=k), tmp_path).cf == want
    cf = lines(tmp_path / "sft_cf.jsonl")
    assert [r["node"] for r in cf[:3]] == [1, 2, 3]


def test_rehearsal_takes_every_step_of_the_drawn_successful_rollouts(trees, tmp_path):
    none = distill(trees, SOKOBAN.system_prompt, distill_config(reh_fraction=0.0), tmp_path)
    assert (none.successful_rollouts, none.reh) == (9, 0)
    full = distill(trees, SOKOBAN.system_prompt, distill_config(reh_fraction=1.0), tmp_path)
    successful = [n for t in read_jsonl(trees) for n in t["nodes"] if n["success"]]
    assert full.reh == sum(len(n["actions"]) for n in successful)
    first = lines(tmp_path / "sft_reh.jsonl")[: len(successful[0]["actions"])]
    assert [(r["node"], r["step"]) for r in first] == [(successful[0]["id"], s) for s in range(1, len(first) + 1)]
    part = distill(trees, SOKOBAN.system_prompt, distill_config(reh_fraction=0.5, seed=1), tmp_path)
    again = distill(trees, SOKOBAN.system_prompt, distill_config(reh_fraction=0.5, seed=1), tmp_path)
    assert part == again and 0 < part.reh_rollouts < 9


def node(id, parent, tau, success):
    return {"id": id, "parent": parent, "tau": tau, "success": success}


def test_a_branch_went_on_to_succeed_only_if_a_success_kept_its_revised_action():
    nodes = [node(0, None, None, False), node(1, 0, 3, False), node(2, 1, 5, True), node(3, 1, 2, True)]
    assert went_on_to_succeed(nodes, nodes[1])  # node 2 revises step 5 > 3: a'_3 is in its prefix
    nodes[2]["success"] = False
    assert not went_on_to_succeed(nodes, nodes[1])  # node 3 revised step 2 < 3: it undid a'_3


class IgnoresExperience(Scripted):
    """Reflects, but acts as if no experience were given: every branch fails too."""

    def generate(self, conversations, sampling):
        for c in conversations:
            c[-1]["content"] = c[-1]["content"].replace(EXPERIENCE_HEADER, "(ignored)")
        return super().generate(conversations, sampling)


def test_failed_branches_are_used_only_when_asked(tmp_path):
    path = tmp_path / "trees.jsonl"
    policy = IgnoresExperience(reflection="Rollback step: 1\nExperience: wait")
    explore(SOKOBAN.tasks("train", 1), SOKOBAN, {"max_steps": 2}, policy, Sampling(), Sampling(), explore_config(max_depth=1), path)
    assert distill(path, "S", distill_config(), tmp_path).cf == 0
    assert distill(path, "S", distill_config(cf_only_successful=False), tmp_path).cf == 1


EXPERIENCE = "push the box toward the target before walking around it"
QUOTING = "the lesson from before was to {experience}, so I do that now."  # a paraphrase around a verbatim span
PARAPHRASING = "I recall I must shove that crate onto its goal first."  # no span of 6 words in common


def quoting_trees(tmp_path, thought):
    path = tmp_path / "trees.jsonl"
    config = explore_config(reflect_every=0, max_depth=1, history_window=2)
    policy = Scripted(reflection=f"Rollback step: 2\nExperience: {EXPERIENCE}", thought=thought)
    explore(SOKOBAN.tasks("train", 2), SOKOBAN, {"max_steps": 6}, policy, Sampling(), Sampling(), config, path)
    return path


def quotes(text):
    return "toward the target before walking around" in text


def test_targets_that_quote_their_experience_are_measured_and_kept_when_asked(tmp_path):
    stats = distill(quoting_trees(tmp_path, QUOTING), "S", distill_config(leak="keep", reh_fraction=1.0), tmp_path)
    assert stats.cf == stats.cf_leaks == 2 and stats.cf_leak_share == 1.0
    assert stats.experienced_actions == stats.leaking_actions > 2
    assert stats.reh_leaks > 0
    saved = json.loads((tmp_path / "distill_stats.json").read_text())
    assert (saved["cf_leak_share"], saved["leak_policy"]) == (1.0, "keep")
    assert all(quotes(r["response"][0]["content"]) for r in lines(tmp_path / "sft_cf.jsonl"))


def test_strip_removes_the_quote_from_targets_and_histories_and_keeps_the_action(tmp_path):
    stats = distill(quoting_trees(tmp_path, QUOTING), "S", distill_config(leak="strip", reh_fraction=1.0), tmp_path)
    assert stats.cf == stats.cf_leaks == 2 and stats.dropped_for_leaks == 0
    records = lines(tmp_path / "sft_cf.jsonl") + lines(tmp_path / "sft_reh.jsonl")
    assert len(records) > 2
    for r in records:
        assert not quotes(json.dumps(r["prompt"])) and not quotes(r["response"][0]["content"])
    for r in lines(tmp_path / "sft_cf.jsonl"):
        target = r["response"][0]["content"]
        assert target.startswith("Thought: the lesson from before was to, so I do that now.\nAction: ")
        assert SOKOBAN.make().reset(SOKOBAN.tasks("train", 1)[0]) and "Action: " in target


def test_drop_removes_every_record_that_shows_a_quote(tmp_path):
    stats = distill(quoting_trees(tmp_path, QUOTING), "S", distill_config(leak="drop", reh_fraction=1.0), tmp_path)
    assert stats.cf == 0 and stats.cf_leaks == 2 and stats.dropped_for_leaks >= 2
    for r in lines(tmp_path / "sft_reh.jsonl"):
        assert not quotes(json.dumps(r["prompt"])) and not quotes(r["response"][0]["content"])


def test_a_paraphrase_without_a_long_common_span_is_not_a_leak(tmp_path):
    stats = distill(quoting_trees(tmp_path, PARAPHRASING), "S", distill_config(leak="keep"), tmp_path)
    assert stats.cf == 2 and stats.cf_leaks == 0 and stats.experienced_actions > 0 and stats.leaking_actions == 0
