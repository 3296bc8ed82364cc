import pytest

from leafe_recipe.envs.base import get_family
from leafe_recipe.explore import ExploreConfig, explore
from leafe_recipe.policy import Sampling
from leafe_recipe.prompts import EXPERIENCE_HEADER
from leafe_recipe.records import read_jsonl
from scripted import Scripted

SOKOBAN = get_family("sokoban")
TASKS = SOKOBAN.tasks("train", 3)
ENV = {"max_steps": 6}


def run(tmp_path, policy, tasks=TASKS, **cfg):
    config = ExploreConfig(**{"reflect_every": 0, "history_window": None, **cfg})
    path = explore(tasks, SOKOBAN, ENV, policy, Sampling(), Sampling(max_new_tokens=64), config, tmp_path / "trees.jsonl")
    return list(read_jsonl(path))


def test_a_failed_root_reflects_rolls_back_and_the_branch_solves(tmp_path):
    trees = run(tmp_path, Scripted())
    assert [t["task"]["id"] for t in trees] == [t.id for t in TASKS]
    for tree in trees:
        root, branch = tree["nodes"]
        assert (root["end"], root["depth"], len(root["actions"])) == ("failure", 0, 6)
        assert (branch["parent"], branch["depth"], branch["tau"], branch["end"]) == (0, 1, 2, "success")
        # the branch starts from exactly the recorded state at step 2
        assert branch["observations"][:2] == root["observations"][:2]
        assert branch["actions"][:1] == root["actions"][:1]
        assert branch["experience"] == "follow the shortest plan"
        assert branch["experience_steps"] == list(range(2, len(branch["actions"]) + 1))
        assert branch["actions"][1] != root["actions"][1]  # a'_tau, the revised action
        ledger = tree["ledger"]
        assert ledger["env_steps"] == 6 + len(branch["actions"]) - 1
        assert (ledger["replay_steps"], ledger["branches"], ledger["successes"]) == (1, 1, 1)
        assert (ledger["reflections"], ledger["reflections_unparsed"]) == (1, 0)
        assert tree["reflections"][0]["t"] == 6 and tree["reflections"][0]["tau"] == 2


def test_one_generate_call_per_round_carries_every_tree(tmp_path):
    policy = Scripted()
    run(tmp_path, policy)
    assert policy.batches[0] == ["act"] * 3  # the three roots, together
    assert policy.batches[6] == ["reflect"] * 3  # every failed root reflects in the same call
    assert policy.batches[7] == ["act+e"] * 3


def test_the_experience_is_in_every_branch_prompt_and_in_no_root_prompt(tmp_path):
    seen = []

    class Spy(Scripted):
        def generate(self, conversations, sampling):
            seen.extend(c for c in conversations if c[0]["content"] == SOKOBAN.system_prompt)
            return super().generate(conversations, sampling)

    run(tmp_path, Spy(), tasks=TASKS[:1])
    with_e = [c for c in seen if EXPERIENCE_HEADER in c[-1]["content"]]
    assert len(seen) == 6 + len(with_e) and with_e
    assert all(EXPERIENCE_HEADER not in m["content"] for c in seen for m in c[:-1])


def test_periodic_reflection_every_k_steps_branches_while_the_node_goes_on(tmp_path):
    policy = Scripted(reflection="Rollback step: 1\nExperience: plan first")
    [tree] = run(tmp_path, policy, tasks=TASKS[:1], reflect_every=2, max_depth=1, max_branches=2)
    root = tree["nodes"][0]
    assert len(root["actions"]) == 6 and root["end"] == "failure"  # the root kept going
    assert [r["t"] for r in tree["reflections"]] == [2, 4, 6]
    assert tree["ledger"]["branches"] == 2 and tree["ledger"]["branches_dropped"] == 1
    assert all(n["tau"] == 1 and n["end"] == "success" for n in tree["nodes"][1:])


def test_the_budget_is_never_exceeded(tmp_path):
    for budget, counts_replay in [(7, True), (9, True), (13, False), (40, True)]:
        trees = run(
            tmp_path / f"{budget}{counts_replay}",
            Scripted(reflection="Rollback step: 4\nExperience: go"),
            reflect_every=1,
            max_depth=3,
            max_branches=50,
            budget=budget,
            budget_counts_replay=counts_replay,
        )
        for tree in trees:
            ledger = tree["ledger"]
            charged = ledger["env_steps"] + (ledger["replay_steps"] if counts_replay else 0)
            assert charged <= budget
            taken = sum(len(n["actions"]) - (n["tau"] - 1 if n["tau"] else 0) for n in tree["nodes"])
            assert taken == ledger["env_steps"]


def test_unparseable_reflections_are_counted_and_never_branch(tmp_path):
    trees = run(tmp_path, Scripted(reflection="I am not sure what happened."))
    for tree in trees:
        assert len(tree["nodes"]) == 1
        assert tree["ledger"]["reflections_unparsed"] == 1
        assert tree["reflections"][0]["parsed"] is False


def test_depth_limit_stops_branching(tmp_path):
    [tree] = run(tmp_path, Scripted(), tasks=TASKS[:1], max_depth=0)
    assert len(tree["nodes"]) == 1 and tree["reflections"] == []


def test_sokoban_reflections_are_graded_against_the_fatal_step(tmp_path):
    [tree] = run(tmp_path, Scripted(), tasks=TASKS[:1])
    assert tree["reflections"][0]["fatal_step"] is None  # waiting never makes a room unsolvable


def test_a_rerun_after_an_interruption_writes_every_task_exactly_once(tmp_path):
    one_tree = Scripted()
    run(tmp_path / "one", one_tree, tasks=TASKS[:1])
    try:  # killed one call into the second tree
        run(tmp_path, Scripted(fail_after=len(one_tree.batches) + 1), max_concurrent_trees=1)
    except KeyboardInterrupt:
        pass
    assert [t["task"]["id"] for t in read_jsonl(tmp_path / "trees.jsonl")] == [TASKS[0].id]
    trees = run(tmp_path, Scripted(), max_concurrent_trees=1)
    assert [t["task"]["id"] for t in trees] == [t.id for t in TASKS]


KILLABLE = """
import sys, time
sys.path.insert(0, {tests!r})
from scripted import Scripted
from test_explore import TASKS, run
from pathlib import Path

class Slow(Scripted):
    def generate(self, conversations, sampling):
        time.sleep(0.05)
        return super().generate(conversations, sampling)

run(Path({out!r}), Slow(), max_concurrent_trees=1)
"""


@pytest.mark.slow
def test_a_rerun_after_kill_9_loses_and_duplicates_nothing(tmp_path):
    import os
    import signal
    import subprocess
    import sys
    import time
    from pathlib import Path

    trees = tmp_path / "trees.jsonl"
    script = KILLABLE.format(tests=str(Path(__file__).parent), out=str(tmp_path))
    proc = subprocess.Popen([sys.executable, "-c", script], start_new_session=True)
    deadline = time.time() + 120
    while (not trees.exists() or not trees.read_text().count("\n")) and time.time() < deadline:
        time.sleep(0.02)
    os.killpg(proc.pid, signal.SIGKILL)
    proc.wait()
    done = [t["task"]["id"] for t in read_jsonl(trees)]
    assert 1 <= len(done) < 3, "killed while the second tree was growing"
    assert [t["task"]["id"] for t in run(tmp_path, Scripted(), max_concurrent_trees=1)] == [t.id for t in TASKS]
