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


def test_a_model_is_identified_by_content_not_by_where_it_lies(tmp_path):
    import shutil

    from leafe_recipe.manifest import Manifest, write
    from leafe_recipe.models import identity

    model = tmp_path / "a" / "model"
    model.mkdir(parents=True)
    (model / "config.json").write_text("{}")
    first = identity(str(model))
    (model / "train.log").write_text("log lines do not change the model")
    assert identity(str(model)) == first and str(tmp_path) not in str(first)
    (model / "model.safetensors").write_bytes(b"weights")
    assert identity(str(model)) != first
    assert identity("Qwen/Qwen2.5-7B-Instruct") == {"hub_id": "Qwen/Qwen2.5-7B-Instruct"}
    write(model, Manifest(prompt=None, identity="trained-by-key-123"))  # a checkpoint of this project: by its stage key
    moved = tmp_path / "b" / "model"
    shutil.copytree(model, moved)
    assert identity(str(model)) == identity(str(moved)) == {"identity": "trained-by-key-123"}
