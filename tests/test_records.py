import json

import pytest

from leafe_recipe.records import JsonlWriter, read_jsonl


def key(r):
    return r["id"]


def test_a_rerun_sees_what_is_done_and_appends(tmp_path):
    path = tmp_path / "out.jsonl"
    with JsonlWriter(path, key) as w:
        w.write({"id": "a"})
    with JsonlWriter(path, key) as w:
        assert w.done == {"a"}
        w.write({"id": "b"})
    assert [r["id"] for r in read_jsonl(path)] == ["a", "b"]


def test_a_torn_last_line_from_a_killed_run_is_cut_off(tmp_path):
    path = tmp_path / "out.jsonl"
    path.write_text(json.dumps({"id": "a"}) + "\n" + '{"id": "b", "samp')
    assert [r["id"] for r in read_jsonl(path)] == ["a"]
    with JsonlWriter(path, key) as w:
        assert w.done == {"a"}
        w.write({"id": "b"})
    assert path.read_text().splitlines() == ['{"id": "a"}', '{"id": "b"}']


def test_writing_a_task_twice_is_refused(tmp_path):
    with JsonlWriter(tmp_path / "out.jsonl", key) as w:
        w.write({"id": "a"})
        with pytest.raises(ValueError, match="already written"):
            w.write({"id": "a"})
