"""method=ace: the playbook's format and curation, the adaptation loop, and the playbook in the evaluation prompt."""

import json

import pytest
from omegaconf import OmegaConf

from baselines.ace import adapt, parse_operations, parse_reflection
from baselines.ace.playbook import Playbook, PlaybookError
from leafe_recipe.envs.base import get_family
from leafe_recipe.policy import Completion, Sampling
from leafe_recipe.prompts import PLAYBOOK_HEADER

SOKOBAN = get_family("sokoban")
METHOD = OmegaConf.create({"tasks_per_round": 2, "max_entries": 3, "max_words": 200, "max_new_entries": 2, "harmful_margin": 2})


def test_the_playbook_round_trips_and_a_foreign_line_is_named():
    book = Playbook()
    book.add("strategies", "Push a box only when the cell behind it is free.")
    book.add("mistakes", "Walking into a wall wastes a step.")
    book.tag("str-00001", "helpful")
    text = book.render()
    assert text == (
        "## strategies\n[str-00001] helpful=1 harmful=0 :: Push a box only when the cell behind it is free.\n"
        "## mistakes\n[mis-00002] helpful=0 harmful=0 :: Walking into a wall wastes a step.\n"
    )
    again = Playbook.parse(text)
    assert again.render() == text and again.next_id == 3
    with pytest.raises(PlaybookError, match="playbook line 2: 'be careful'"):
        Playbook.parse("## strategies\nbe careful\n")


def test_curation_skips_duplicates_drops_harmful_entries_and_keeps_the_cap():
    book = Playbook()
    assert book.add("strategies", "Plan  ahead.") is not None and book.add("strategies", "plan ahead.") is None
    for i in range(5):
        book.add("unknown section", f"Rule {i}.")  # an unknown section goes to strategies
    assert {e.section for e in book.entries} == {"strategies"} and len(book.entries) == 6
    for _ in range(2):
        book.tag("str-00003", "harmful")  # "Rule 1.": judged harmful twice, never helpful
    book.tag("str-00006", "helpful")
    dropped = book.prune(max_entries=3, max_words=200, harmful_margin=2)
    assert [e.content for e in dropped][0] == "Rule 1."
    # then the lowest-scoring, oldest first, until 3 remain: the helpful one stays
    assert [e.id for e in book.entries] == ["str-00004", "str-00005", "str-00006"]
    book.prune(max_entries=3, max_words=4, harmful_margin=None)
    assert sum(len(e.content.split()) for e in book.entries) <= 4


def test_the_reflector_and_curator_answers_are_read_or_refused():
    r = parse_reflection('x {"key_insight": "push up first", "correct_approach": "up", "bullet_tags": [{"id": "str-00001", "tag": "harmful"}, 3]} y')
    assert r["key_insight"] == "push up first" and r["bullet_tags"] == [{"id": "str-00001", "tag": "harmful"}]
    assert parse_reflection("Action: up") is None and parse_reflection('{"reasoning": "no insight"}') is None
    ops = parse_operations('{"operations": [{"type": "ADD", "section": "mistakes", "content": "walls"}, {"type": "REMOVE", "id": "x"}]}')
    assert ops == [{"section": "mistakes", "content": "walls"}] and parse_operations("nothing") is None


class Roles:
    """Plays 'wait' (never solves), reflects and curates in ACE's JSON; records every system prompt."""

    def __init__(self):
        self.systems, self.insights = [], 0

    def generate(self, conversations, sampling):
        out = []
        for conv in conversations:
            system = conv[0]["content"]
            self.systems.append(system)
            if system.startswith("You are the Reflector"):
                self.insights += 1
                text = json.dumps({"key_insight": f"insight {self.insights}", "correct_approach": "move the box",
                                   "bullet_tags": [{"id": "str-00001", "tag": "helpful"}]})  # fmt: skip
            elif system.startswith("You are the Curator"):
                text = json.dumps({"operations": [{"type": "ADD", "section": "strategies", "content": f"entry after {self.insights}"}]})
            else:
                text = "Action: wait"
            out.append(Completion(text=text, num_tokens=3, truncated=False))
        return out


def test_adaptation_grows_a_capped_playbook_round_by_round_within_the_budget(tmp_path):
    tasks = SOKOBAN.tasks("train", 3)
    policy = Roles()
    book, ledger = adapt(tasks, SOKOBAN, {"max_steps": 4}, policy, METHOD, Sampling(), Sampling(), 2, budget=8, folder=tmp_path)
    # 3 tasks x 2 attempts of 4 steps (budget 8), 2 tasks a round: 3 rounds, one curation each
    assert ledger["env_steps"] == 24 and ledger["rounds"] == 3 and ledger["reflections"] == 6
    assert ledger["model_calls"] == 24 + 6 + 3 and ledger["added"] == 3
    assert len(book.entries) <= METHOD.max_entries and book.entries[0].helpful >= 1
    # the generator's prompt carries the playbook of the round before
    played = [s for s in policy.systems if s.startswith("You are an agent playing Sokoban")]
    assert PLAYBOOK_HEADER not in played[0] and "entry after 2" in played[-1]
    assert (tmp_path / "round_1.md").read_text() == "## strategies\n[str-00001] helpful=0 harmful=0 :: entry after 2\n"
    assert (tmp_path / "final.md").read_text() == book.render()
    assert len((tmp_path / "rounds.jsonl").read_text().splitlines()) == 3


def test_the_evaluation_prompt_carries_the_playbook_given_as_a_task_argument(tmp_path):
    from leafe_recipe.lm_eval_plugin import LeafeEvalError, evaluate_checkpoint, leafe_dataset

    playbook = tmp_path / "final.md"
    playbook.write_text("## strategies\n[str-00001] helpful=0 harmful=0 :: Push up first.\n")
    docs = leafe_dataset({"env": "sokoban", "n_test": 2}, playbook=str(playbook))["test"]
    assert all(d["system"].endswith(f"{PLAYBOOK_HEADER}:\n## strategies\n[str-00001] helpful=0 harmful=0 :: Push up first.") for d in docs)
    policy = Roles()
    evaluate_checkpoint("roles", "leafe_sokoban", n_samples=1, output_path=tmp_path / "out",
                        metadata={"sokoban": {"n_test": 2}, "playbook": str(playbook)}, policy=policy)  # fmt: skip
    assert policy.systems and all("Push up first." in s for s in policy.systems)
    with pytest.raises(LeafeEvalError, match="is not a file"):
        leafe_dataset({"env": "sokoban", "n_test": 1}, playbook=str(tmp_path / "missing.md"))
