"""method=search_compare: three ways of spending one budget on the train tasks (the paper's Table 3)."""

from helpers import explore_config
from leafe_recipe.envs.base import get_family
from leafe_recipe.explore import explore
from leafe_recipe.policy import Sampling
from leafe_recipe.prompts import EXPERIENCE_HEADER
from leafe_recipe.records import read_jsonl
from leafe_recipe.search import sequential, tree_attempts
from scripted import Scripted

FAMILY = get_family("sokoban")
KWARGS = {"max_steps": 8}
S = Sampling(temperature=1.0, top_p=1.0, top_k=0, max_new_tokens=32, stop=(), seed=0)


def tasks(n=2):
    return FAMILY.tasks("train", n, dim=[5, 5], min_solution_len=2)


def run(tmp_path, refine, budget=20, policy=None):
    policy = policy or Scripted()
    out = sequential(tasks(), FAMILY, KWARGS, policy, S, budget, refine, tmp_path / f"{refine}.jsonl", history_window=2)
    return list(read_jsonl(out)), policy


def test_independent_sampling_retries_from_scratch_until_the_budget_is_spent(tmp_path):
    records, policy = run(tmp_path, refine=False)
    # 'wait' never solves: attempts of 8, 8 and the last 4 steps of the budget of 20
    assert [[a["steps"] for a in r["attempts"]] for r in records] == [[8, 8, 4], [8, 8, 4]]
    assert all(not a["success"] for r in records for a in r["attempts"]) and records[0]["model_calls"] == 20
    assert "act+e" not in {k for batch in policy.batches for k in batch}  # no attempt saw another's feedback


def test_refinement_puts_the_previous_attempts_feedback_in_the_prompt_and_stops_at_success(tmp_path):
    seen = []

    class Spy(Scripted):
        def generate(self, conversations, sampling):
            seen.extend(c[-1]["content"] for c in conversations)
            return super().generate(conversations, sampling)

    records, _ = run(tmp_path, refine=True, policy=Spy())
    # the first attempt fails; the retry sees its feedback (the stand-in then plays the solver) and succeeds
    assert [[a["success"] for a in r["attempts"]] for r in records] == [[False, True], [False, True]]
    feedback = [text for text in seen if EXPERIENCE_HEADER in text]
    assert feedback and "The previous attempt failed after 8 steps. Its actions: invalid, invalid, invalid," in feedback[0]


def test_the_tree_s_attempts_are_its_nodes_in_the_order_they_started_with_their_replays(tmp_path):
    trees = tmp_path / "trees.jsonl"
    config = explore_config(reflect_every=0, max_depth=1, max_branches=2, budget=30, history_window=2)
    explore(tasks(1), FAMILY, KWARGS, Scripted(reflection="Rollback step: 2\nExperience: push it"), S, S, config, trees)
    [record] = tree_attempts(trees, 30)
    tree = next(read_jsonl(trees))
    assert len(record["attempts"]) == len(tree["nodes"]) >= 2
    assert record["attempts"][0] == {"success": False, "steps": 8, "replay_steps": 0}
    assert record["attempts"][1]["replay_steps"] == 1 and record["attempts"][1]["success"]
    assert record["model_calls"] == tree["ledger"]["model_calls"]
