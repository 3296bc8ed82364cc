from leafe_recipe.envs.base import get_family
from leafe_recipe.envs.sokoban import solve
from leafe_recipe.policy import Completion, Sampling
from leafe_recipe.policy.hf import HFPolicy
from leafe_recipe.records import read_jsonl
from leafe_recipe.rollout import rollout

SOKOBAN = get_family("sokoban")


class PlanPolicy:
    """Plays the solver's plan for each task (found by its first observation); records every call."""

    def __init__(self, tasks, env, wrong_first: bool = False):
        self.plans = {env.reset(t): solve(t.data["grid"]) for t in tasks}
        self.wrong_first = wrong_first
        self.batches: list[int] = []

    def generate(self, conversations, sampling):
        self.batches.append(len(conversations))
        out = []
        for conv in conversations:
            turn = sum(m["role"] == "assistant" for m in conv)
            plan = self.plans[conv[1]["content"]]
            if self.wrong_first:
                plan = ["nonsense"] + plan
            out.append(Completion(text=f"Thought: follow the plan.\nAction: {plan[turn]}", num_tokens=5, truncated=False))
        return out


def test_one_generate_call_per_turn_carries_every_live_episode(tmp_path):
    tasks = SOKOBAN.tasks("test", 3)
    policy = PlanPolicy(tasks, SOKOBAN.make(max_steps=20), wrong_first=True)
    path = rollout(tasks, 2, SOKOBAN, {"max_steps": 20}, policy, Sampling(), tmp_path / "t.jsonl")
    longest = max(len(solve(t.data["grid"])) for t in tasks) + 1
    assert len(policy.batches) == longest  # one call per turn, not per episode
    assert policy.batches[0] == 6  # 3 tasks x 2 samples in the first call
    records = list(read_jsonl(path))
    assert [r["task"]["id"] for r in records] == sorted(r["task"]["id"] for r in records)
    for r, t in zip(sorted(records, key=lambda r: r["task"]["id"]), sorted(tasks, key=lambda t: t.id)):
        assert (r["n"], r["c"]) == (2, 2)
        for s in r["samples"]:
            assert s["success"] and s["env_steps"] == len(solve(t.data["grid"])) + 1
            assert s["invalid_actions"] == 1 and s["gen_tokens"] == 5 * s["env_steps"]
            assert len(s["observations"]) == len(s["actions"]) + 1 == len(s["rewards"]) + 1
            assert s["rewards"][-1] == 1.0


def test_max_concurrent_bounds_the_batch_and_still_plays_everything(tmp_path):
    tasks = SOKOBAN.tasks("test", 4)
    policy = PlanPolicy(tasks, SOKOBAN.make(max_steps=20))
    path = rollout(tasks, 3, SOKOBAN, {"max_steps": 20}, policy, Sampling(), tmp_path / "t.jsonl", max_concurrent=5)
    assert max(policy.batches) == 5
    assert sum(r["c"] for r in read_jsonl(path)) == 12


def test_a_rerun_skips_finished_tasks(tmp_path):
    tasks = SOKOBAN.tasks("test", 3)
    out = tmp_path / "t.jsonl"
    rollout(tasks[:2], 1, SOKOBAN, {}, PlanPolicy(tasks, SOKOBAN.make()), Sampling(), out)
    again = PlanPolicy(tasks, SOKOBAN.make())
    rollout(tasks, 1, SOKOBAN, {}, again, Sampling(), out)
    assert again.batches[0] == 1  # only the third task was played
    assert [r["task"]["id"] for r in read_jsonl(out)] == [t.id for t in tasks]


def test_tiny_model_episodes_end_at_the_step_limit(tmp_path, tiny_model):
    tasks = SOKOBAN.tasks("test", 2)
    path = rollout(tasks, 2, SOKOBAN, {"max_steps": 3}, HFPolicy(tiny_model), Sampling(max_new_tokens=8), tmp_path / "t.jsonl")
    records = list(read_jsonl(path))
    assert len(records) == 2
    for s in (s for r in records for s in r["samples"]):
        assert s["env_steps"] == 3 and not s["success"]
        assert 0 < s["gen_tokens"] <= 24


def test_stepping_environments_in_threads_gives_the_same_records(tmp_path):
    tasks = SOKOBAN.tasks("test", 3)
    one = rollout(tasks, 2, SOKOBAN, {}, PlanPolicy(tasks, SOKOBAN.make(), wrong_first=True), Sampling(), tmp_path / "1.jsonl")
    two = rollout(tasks, 2, SOKOBAN, {}, PlanPolicy(tasks, SOKOBAN.make(), wrong_first=True), Sampling(), tmp_path / "2.jsonl", env_workers=2)
    assert list(read_jsonl(one)) == list(read_jsonl(two))


def test_an_episode_can_start_from_a_replayed_prefix_with_an_experience_in_every_prompt():
    from leafe_recipe.prompts import EXPERIENCE_HEADER
    from leafe_recipe.rollout import Start, run_episodes

    task = SOKOBAN.tasks("test", 1)[0]
    plan = solve(task.data["grid"])
    prompts = []

    class Rest:
        def generate(self, conversations, sampling):
            prompts.extend(conversations)
            return [Completion(text=f"Action: {plan[sum(m['role'] == 'assistant' for m in c)]}", num_tokens=2, truncated=False)
                    for c in conversations]  # fmt: skip

    start = Start(task, 0, prefix=(f"Action: {plan[0]}",), experience="keep going")
    [ep] = run_episodes([start], SOKOBAN, {"max_steps": 20}, Rest(), Sampling(), history_window=None)
    assert ep.success and ep.actions == [f"Action: {m}" for m in plan] and len(ep.observations) == len(plan) + 1
    assert len(prompts) == len(plan) - 1  # the prefix was replayed, not generated
    assert all(p[-1]["content"].endswith(f"{EXPERIENCE_HEADER}: keep going") for p in prompts)
