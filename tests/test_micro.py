"""The micro model's recipe (leafe_recipe/micro.py): its data, its tokenizer, its cache key and
the measurement of its abilities. Building the model itself takes tens of minutes on 2 cores,
so the tests check what it is built from and run the measurement on the tiny model."""

import random
import re
from collections import Counter

import jinja2
import pytest

from leafe_recipe.envs.sokoban import ACTIONS, first_mistake, hint, optimal_moves, parse_action, sokoban_tasks
from leafe_recipe.micro import (
    MicroConfig, _noisy_episode, _reflection_answer, make_examples, measure, report_lines, room_rows, sokoban_settings,
    train_tokenizer,
)  # fmt: skip
from leafe_recipe.prompts import parse_reflection
from leafe_recipe.tiny import CHAT_TEMPLATE

SMALL = MicroConfig(rooms=6, hint_follow_share=1.0, reflection_label_share=1.0)


@pytest.fixture(scope="module")
def examples():
    return make_examples(SMALL)


@pytest.fixture(scope="module")
def texts(examples):
    template = jinja2.Template(CHAT_TEMPLATE)
    return [template.render(messages=m + [{"role": "assistant", "content": a}], add_generation_prompt=False) for m, a in examples]


@pytest.fixture(scope="module")
def tokenizer(texts):
    return train_tokenizer(texts, 512)


def test_every_answer_is_in_the_format_the_methods_parse(examples):
    for messages, answer in examples:
        if answer.startswith("Rollback step:"):
            assert parse_reflection(answer, 100).parsed or answer == "Rollback step: none\nExperience: The attempt is on track."
        else:
            assert answer in {f"Action: {a}" for a in ACTIONS}


def test_the_data_holds_play_reflections_and_hinted_branches(examples):
    reflections = [a for _, a in examples if a.startswith("Rollback step:")]
    hinted = [a for m, a in examples if "At step" in m[-1]["content"] and not a.startswith("Rollback")]
    assert reflections and hinted and len(examples) > len(reflections) + len(hinted)


def test_a_hinted_branch_opens_with_the_hinted_move():
    task = sokoban_tasks("build", 1, **sokoban_settings()["tasks"])[0]
    wrong = next(a for a in ACTIONS if a not in optimal_moves(task.data["grid"]))
    right = sorted(optimal_moves(task.data["grid"]))[0]
    experience = hint(1, right, wrong)
    _, actions, examples = _noisy_episode(task, random.Random(0), SMALL, prefix=[], experience=experience)
    assert examples[0][1] == f"Action: {right}" == actions[0]  # hint_follow_share=1.0
    assert experience in examples[0][0][-1]["content"]


def test_where_a_branch_opens_its_hint_names_every_move_but_the_mistake_and_is_followed(examples):
    """The same room answered differently by hint alone: the model cannot learn the answer from the room."""
    opened: dict[str, list[tuple[str, str, str]]] = {}
    later = 0
    for messages, answer in examples:
        found = re.search(r"This is step (\d+)\.\n.*: At step (\d+), move (\w+) instead of (\w+)\.$", messages[-1]["content"])
        if found and found[1] == found[2]:
            room = messages[-1]["content"][: found.start()]
            opened.setdefault(room + found[2], []).append((found[3], found[4], answer))
        later += bool(found) and int(found[1]) > int(found[2])
    assert opened and later
    for hinted in opened.values():
        wrong = {w for _, w, _ in hinted}
        assert len(wrong) == 1 and Counter(m for m, _, _ in hinted) == {m: SMALL.hint_repeats for m in set(ACTIONS) - wrong}
        assert all(answer == f"Action: {move}" for move, _, answer in hinted)  # hint_follow_share=1.0


def test_a_reflection_names_the_first_mistake_when_labels_are_exact():
    task = sokoban_tasks("build", 1, **sokoban_settings()["tasks"])[0]
    grid = task.data["grid"]
    right = sorted(optimal_moves(grid))[0]
    wrong = next(a for a in ACTIONS if a not in optimal_moves(grid))
    actions = [f"Action: {right}", f"Action: {wrong}", f"Action: {wrong}"]
    step, move = first_mistake(grid, actions)
    answer = _reflection_answer(task, actions, True, random.Random(0), SMALL)
    assert answer == f"Rollback step: {step}\nExperience: {hint(step, move, parse_action(actions[step - 1]))}"
    assert parse_reflection(answer, 3).tau == step


def test_the_tokenizer_reads_rooms_row_by_row_and_prompts_are_prefixes(examples, tokenizer):
    from leafe_recipe.envs.sokoban import render

    rows = [row + "\n" for row in render(sokoban_tasks("build", 1, **sokoban_settings()["tasks"])[0].data["grid"]).splitlines()[:-1]]
    assert tokenizer.tokenize("".join(rows) + "Legend")[: len(rows)] == rows
    assert len(room_rows(5)) == 1 + 7**3  # the wall row and every 3-cell interior
    messages, answer = examples[0]
    prompt = tokenizer.apply_chat_template(messages, add_generation_prompt=True, tokenize=False)
    whole = tokenizer.apply_chat_template(messages + [{"role": "assistant", "content": answer}], tokenize=False)
    ids_prompt, ids_whole = tokenizer(prompt)["input_ids"], tokenizer(whole)["input_ids"]
    assert ids_whole[: len(ids_prompt)] == ids_prompt
    assert tokenizer.decode(ids_whole) == whole
    assert len(ids_prompt) < len(prompt) / 3  # the environment's fixed phrases are few tokens


def test_step_numbers_are_tokens_of_their_own_so_a_hint_and_the_step_it_is_read_at_share_them(tokenizer):
    shown = tokenizer.tokenize("This is step 5.\nExperience from an earlier attempt at this task: At step 5, move up.")
    assert shown.count("5") == 2


def test_the_tokenizer_loads_back_as_itself_beside_a_qwen3_config(texts, tokenizer, tmp_path):
    """What OpenRLHF, lm-eval and the policies load must tokenise as the trained tokenizer does
    (transformers 5 would load it beside a qwen2 config as Qwen2Tokenizer, splitting words first)."""
    from transformers import AutoTokenizer, Qwen3Config

    tokenizer.save_pretrained(tmp_path)
    Qwen3Config(vocab_size=len(tokenizer)).save_pretrained(tmp_path)
    loaded = AutoTokenizer.from_pretrained(tmp_path)
    assert all(loaded(t)["input_ids"] == tokenizer(t)["input_ids"] for t in texts)


@pytest.mark.slow
def test_measure_reports_the_three_abilities(tiny_model, capsys):
    m = measure(tiny_model, rooms=2, samples=2, hint_samples=1, resamples=50)
    assert set(m["pass_at_k"]) == {"1", "2"}
    assert 0 <= m["pass_at_k"]["1"] <= m["pass_at_k"]["2"] <= 1
    assert m["follow_hint"]["branch_points"] <= 2 and m["reflection"]["reflections"] <= 4
    lines = report_lines(m).splitlines()
    assert [line.split(":")[0] for line in lines] == ["[micro] play (2 validation rooms x 2 samples)", "[micro] follows a hint", "[micro] reflects"]
    assert "[micro] play" in capsys.readouterr().out


def test_the_report_says_n_a_where_no_attempt_failed():
    m = {"rooms": 1, "samples": 1, "pass_at_k": {"1": 1.0}, "random_walker": 0.0,
         "follow_hint": {"branch_points": 0, "with_hint": None, "without_hint": None, "difference": None, "ci95": None,
                         "hinted_move_with_hint": None, "hinted_move_without_hint": None},
         "reflection": {"reflections": 0, "parsed": None, "graded": 0, "at_or_before_fatal": None, "uniform_at_or_before_fatal": None,
                        "first_mistake_exact": None, "uniform_first_mistake_exact": None}}  # fmt: skip
    assert "success n/a with the correct hint vs n/a without: n/a" in report_lines(m)


@pytest.mark.slow
def test_the_shipped_micro_model_is_the_build_of_this_recipe():
    """leafe_recipe/micro_model/ is used only when its key is the recipe's; a change to the data,
    settings or pinned libraries makes this fail until `make micro` ships a new build."""
    from dataclasses import asdict

    from leafe_recipe.manifest import read
    from leafe_recipe.micro import COMMITTED
    from leafe_recipe.models import build_key

    config = MicroConfig()
    key = build_key(make_examples(config), {"config": asdict(config), "sokoban": sokoban_settings()})
    assert read(COMMITTED).identity == key, "the shipped micro model is stale: rebuild it with `make micro`"
