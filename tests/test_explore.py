import pytest

from leafe_recipe.envs.base import get_family
from leafe_recipe.explore import explore
from helpers import explore_config
from leafe_recipe.policy import Sampling
from leafe_recipe.prompts import EXPERIENCE_HEADER
from leafe_recipe.records import read_jsonl
from scripted import Scripted

SOKOBAN = get_family("sokoban")
TASKS = SOKOBAN.tasks("train", 3)
ENV = {"max_steps": 6}


def run(tmp_path, policy, tasks=TASKS, **cfg):
    config = explore_config(**{"reflect_every": 0, "history_window": None, **cfg})
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


def test_a_started_branch_always_gets_its_revised_action(tmp_path):
    """The root and a new branch are live in the same round with one step of budget left:
    the step was reserved for the branch's a'_tau when it started."""
    policy = Scripted(reflection="Rollback step: 1\nExperience: go")
    for budget in range(3, 16):
        [tree] = run(tmp_path / str(budget), policy, tasks=TASKS[:1], reflect_every=1, max_depth=2, max_branches=50, budget=budget)
        branches = [n for n in tree["nodes"] if n["tau"] is not None]
        assert branches, budget
        assert all(len(n["actions"]) >= n["tau"] for n in branches), (budget, [n["actions"] for n in branches])
        assert tree["ledger"]["env_steps"] + tree["ledger"]["replay_steps"] <= budget


def test_periodic_reflection_counts_the_branchs_own_steps(tmp_path):
    policy = Scripted(reflection="Rollback step: 2\nExperience: plan first", fail_when_experienced=True)
    [tree] = run(tmp_path, policy, tasks=TASKS[:1], reflect_every=2, max_depth=1, max_branches=1)
    branch = tree["nodes"][1]
    assert branch["tau"] == 2
    on_branch = [r["t"] for r in tree["reflections"] if r["node"] == branch["id"]]
    assert on_branch == [], "depth 1 is the limit: the branch never reflects"
    [tree] = run(tmp_path / "deeper", policy, tasks=TASKS[:1], reflect_every=2, max_depth=2, max_branches=1)
    branch = tree["nodes"][1]
    periodic = [r["t"] for r in tree["reflections"] if r["node"] == branch["id"] and r["t"] < len(branch["actions"])]
    own = [t - (branch["tau"] - 1) for t in periodic]
    assert own and all(k % 2 == 0 for k in own), own  # after 2, 4, ... of its own steps, not after 1


class NoisyEnv:
    """Sokoban whose observations carry an unordered 'you hear' list that comes out in a
    different order every episode (like ScienceWorld's object listings)."""

    episodes = 0

    def __init__(self, **kwargs):
        self.env = SOKOBAN.make(**kwargs)

    def reset(self, task):
        NoisyEnv.episodes += 1
        return self.env.reset(task) + self._noise()

    def step(self, action):
        step = self.env.step(action)
        step.observation += self._noise()
        return step

    def _noise(self):
        sounds = ["a bird", "the wind"]
        return "\nYou hear: " + ", ".join(sounds if NoisyEnv.episodes % 2 else sounds[::-1])


def _noisy_family(canonical=None):
    from dataclasses import replace

    return replace(SOKOBAN, make=NoisyEnv, canonical=canonical)


def test_a_divergent_replay_drops_the_branch_and_exploration_goes_on(tmp_path):
    config = explore_config(reflect_every=0, history_window=None, max_divergence_share=1.0)
    path = explore(TASKS, _noisy_family(), ENV, Scripted(), Sampling(), Sampling(), config, tmp_path / "trees.jsonl")
    trees = list(read_jsonl(path))
    assert len(trees) == 3
    for tree in trees:
        assert tree["ledger"]["replay_divergences"] == 1 and tree["ledger"]["branches"] == 0
        assert len(tree["nodes"]) == 1 and tree["divergences"][0]["step"] == 0


def test_a_canonicaliser_makes_an_unordered_listing_replay(tmp_path):
    def canonical(obs):
        head, _, sounds = obs.partition("\nYou hear: ")
        return head + "|" + ",".join(sorted(sounds.split(", ")))

    config = explore_config(reflect_every=0, history_window=None)
    path = explore(TASKS, _noisy_family(canonical), ENV, Scripted(), Sampling(), Sampling(), config, tmp_path / "t.jsonl")
    for tree in read_jsonl(path):
        assert tree["ledger"]["replay_divergences"] == 0 and tree["nodes"][1]["end"] == "success"


def test_too_many_divergences_stop_with_a_clear_error_and_keep_the_finished_trees(tmp_path):
    from leafe_recipe.explore import MIN_ROLLBACKS_FOR_SHARE, ExplorationError

    tasks = SOKOBAN.tasks("train", MIN_ROLLBACKS_FOR_SHARE + 5)
    config = explore_config(reflect_every=0, history_window=None, max_divergence_share=0.5, max_concurrent_trees=1)
    with pytest.raises(ExplorationError, match=r"20 of 20 rollbacks \(100%\) diverged.*max_divergence_share=0.5.*canonicaliser"):
        explore(tasks, _noisy_family(), ENV, Scripted(), Sampling(), Sampling(), config, tmp_path / "trees.jsonl")
    assert len(list(read_jsonl(tmp_path / "trees.jsonl"))) == MIN_ROLLBACKS_FOR_SHARE


def test_oracle_reflection_replaces_the_policys_without_a_model_call(tmp_path):
    from leafe_recipe.envs.sokoban import first_mistake

    policy = Scripted()
    trees = run(tmp_path, policy, reflection="oracle", max_depth=1)
    assert "reflect" not in {kind for batch in policy.batches for kind in batch}
    for tree in trees:
        root = tree["nodes"][0]
        [r] = tree["reflections"]
        # 'wait' pushes nothing, so no step is fatal: the oracle names the first mistake, step 1
        assert r["tau"] == first_mistake(tree["task"]["data"]["grid"], root["actions"])[0] == 1
        assert r["experience"].startswith("At step 1, move ") and tree["nodes"][1]["end"] == "success"
        assert tree["ledger"]["model_calls"] == sum(len(n["actions"]) - (n["tau"] or 1) + 1 for n in tree["nodes"])


def test_oracle_reflection_needs_an_environment_with_an_oracle(tmp_path):
    from dataclasses import replace

    from leafe_recipe.explore import ExplorationError

    with pytest.raises(ExplorationError, match="has no oracle"):
        explore(TASKS, replace(SOKOBAN, oracle_reflection=None), ENV, Scripted(), Sampling(), Sampling(),
                explore_config(reflection="oracle"), tmp_path / "t.jsonl")  # fmt: skip
