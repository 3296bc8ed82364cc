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


def test_a_stage_output_is_reused_only_with_the_settings_that_made_it(tmp_path):
    from leafe_recipe.records import StageMismatch, claim, key_file

    out = tmp_path / "trees.jsonl"
    key = {"model": {"hub_id": "m"}, "budget": 100}
    claim(out, key, "use a new run folder")
    out.write_text("{}\n")
    claim(out, dict(key), "use a new run folder")  # the same settings: go on
    with pytest.raises(StageMismatch, match=r"trees.jsonl was made with other settings \(budget: 100 -> 50\)\. use a new"):
        claim(out, {**key, "budget": 50}, "use a new run folder")
    with pytest.raises(StageMismatch, match=r"\(model.hub_id: \"m\" -> \"n\"\)"):
        claim(out, {**key, "model": {"hub_id": "n"}}, "x")
    with pytest.raises(StageMismatch):
        claim(out, {**key, "budget": 50}, "use a new run folder")
    key_file(out).unlink()
    with pytest.raises(StageMismatch, match="does not say which settings made it"):
        claim(out, key, "remove it")


def test_a_model_directory_is_identified_by_its_files(tmp_path):
    from leafe_recipe.records import model_identity

    (tmp_path / "config.json").write_text("{}")
    first = model_identity(str(tmp_path))
    (tmp_path / "train.log").write_text("log lines do not change the model")
    assert model_identity(str(tmp_path)) == first
    (tmp_path / "model.safetensors").write_bytes(b"weights")
    assert model_identity(str(tmp_path)) != first
    assert model_identity("Qwen/Qwen2.5-7B-Instruct") == {"hub_id": "Qwen/Qwen2.5-7B-Instruct"}
