import pytest

from leafe_recipe.prompts import EXPERIENCE_HEADER, Reflection, build_messages, build_reflection, parse_reflection


def test_history_alternates_assistant_actions_and_user_feedback():
    msgs = build_messages("SYS", ["o0", "o1", "o2"], ["a1", "a2"])
    assert msgs == [
        {"role": "system", "content": "SYS"},
        {"role": "user", "content": "o0"},
        {"role": "assistant", "content": "a1"},
        {"role": "user", "content": "o1"},
        {"role": "assistant", "content": "a2"},
        {"role": "user", "content": "o2"},
    ]


def test_window_keeps_the_task_and_the_last_steps():
    msgs = build_messages("SYS", ["o0", "o1", "o2", "o3"], ["a1", "a2", "a3"], window=1)
    assert [m["content"] for m in msgs] == [
        "SYS",
        "o0\n\n[Steps 1-2 are omitted; the last 1 steps follow.]",
        "a3",
        "o3",
    ]


def test_window_larger_than_history_keeps_everything():
    assert build_messages("S", ["o0", "o1"], ["a1"], window=8) == build_messages("S", ["o0", "o1"], ["a1"])


def test_observations_must_lead_actions_by_one():
    with pytest.raises(ValueError, match="one more observation than actions"):
        build_messages("S", ["o0"], ["a1"])


def test_experience_goes_into_the_latest_user_turn_only_with_the_step_it_is_for():
    msgs = build_messages("S", ["o0", "o1"], ["a1"], experience="push the box left first")
    assert msgs[-1]["content"] == f"o1\n\nThis is step 2.\n{EXPERIENCE_HEADER}: push the box left first"
    assert all("push the box" not in m["content"] for m in msgs[:-1])
    assert msgs[:-1] == build_messages("S", ["o0", "o1"], ["a1"])[:-1]


def test_reflection_prompt_numbers_every_step_and_bounds_the_answer():
    msgs = build_reflection(["task", "f1", "f2"], ["a1", "a2"], finished=True)
    text = msgs[-1]["content"]
    assert "Step 1\nAction: a1\nFeedback: f1" in text and "Step 2\nAction: a2\nFeedback: f2" in text
    assert "from 1 to 2>" in text and "none" not in text
    assert "or none if it is on track" in build_reflection(["t", "f1"], ["a1"], finished=False)[-1]["content"]


@pytest.mark.parametrize(
    "text, want",
    [
        ("Rollback step: 3\nExperience: the box got stuck; go around it.", Reflection(3, "the box got stuck; go around it.", True, False)),
        ("I think... **Rollback step:** step 2\n\nExperience: push up first", Reflection(2, "push up first", True, False)),
        ("<step>1</step> <experience> avoid the wall </experience>", Reflection(1, "avoid the wall", True, False)),
        ('{"rollback_step": 4, "experience": "check the corner"}', Reflection(4, "check the corner", True, False)),
        ("Rollback step: 9\nExperience: too late", Reflection(5, "too late", True, True)),
        ("Rollback step: 0\nExperience: x", Reflection(1, "x", True, True)),
        ("Rollback step: none\nExperience: on track", Reflection(None, "on track", True, False)),
        ("Rollback step: 2", Reflection(None, "", False, False)),
        ("no idea", Reflection(None, "", False, False)),
        ('{"rollback_step": "soon", "experience": "x"}', Reflection(None, "", False, False)),
    ],
)
def test_reflection_answers_are_parsed_or_marked_unparsed(text, want):
    assert parse_reflection(text, t=5) == want
