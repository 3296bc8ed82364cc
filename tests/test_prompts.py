import pytest

from leafe_recipe.prompts import build_messages


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
