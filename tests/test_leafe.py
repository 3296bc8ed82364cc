"""method=leafe (leafe_recipe/leafe.py): its decisions between the stages, and the whole
pipeline end to end on the tiny model: explore -> distill -> train -> evaluate -> report."""

import json

import pytest
from omegaconf import OmegaConf

from helpers import leafe
from leafe_recipe.distill import DistillStats
from leafe_recipe.envs.base import get_family
from leafe_recipe.leafe import LeafeError, _training_data
from leafe_recipe.records import read_jsonl

SMALL = ("method=leafe", "experiment=smoke", "env.n_train=4", "env.n_test=2", "n_samples=2", "budget=24")


def method(ablation=None, beta=1.0):
    return OmegaConf.create({"ablation": ablation, "beta": beta, "distill": {"cf_only_successful": True}})


@pytest.fixture
def sft(tmp_path):
    (tmp_path / "sft").mkdir()
    (tmp_path / "sft" / "sft_cf.jsonl").write_text("")
    (tmp_path / "sft" / "sft_reh.jsonl").write_text('{"prompt": [], "response": []}\n')
    return tmp_path


def test_an_empty_d_cf_is_not_silently_the_rehearsal_only_ablation(sft):
    stats = DistillStats(trees=3, branches=5, cf_candidates=0, cf=0, successful_rollouts=2, reh=7)
    with pytest.raises(LeafeError, match=r"no counterfactual data.*3 trees, 5 branches, 0 eligible.*D_reh 7.*method.ablation=rehearsal_only"):
        _training_data(method(), stats, sft)


def test_the_rehearsal_only_ablation_trains_on_d_reh_alone(sft):
    (sft / "sft" / "sft_cf.jsonl").write_text('{"prompt": [], "response": []}\n')  # even with D_cf at hand
    stats = DistillStats(cf=1, reh=1)
    assert _training_data(method("rehearsal_only"), stats, sft) == ([str(sft / "sft" / "sft_reh.jsonl")], None)
    files, probs = _training_data(method(beta=1.0), stats, sft)
    assert files == [str(sft / "sft" / "sft_cf.jsonl"), str(sft / "sft" / "sft_reh.jsonl")] and probs == [0.5, 0.5]


@pytest.mark.slow
def test_leafe_runs_every_stage_and_a_rerun_resumes_without_redoing_any(tmp_path):
    run = tmp_path / "run"
    proc = leafe(*SMALL, f"hydra.run.dir={run}", cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert "| base |" in proc.stdout and "| leafe |" in proc.stdout and "| ledger | value |" in proc.stdout
    for stage in ("[explore] 4 trees", "[distill] D_cf", "[train]", "[evaluate base]", "[evaluate leafe]"):
        assert stage in proc.stdout, stage
    assert "explore: 100%" in proc.stderr  # the progress bar
    trees = list(read_jsonl(run / "trees.jsonl"))
    assert sorted(t["task"]["id"] for t in trees) == sorted(t.id for t in get_family("sokoban").tasks("train", 4, dim=[6, 6], min_solution_len=2))
    assert all(t["ledger"]["env_steps"] + t["ledger"]["replay_steps"] <= 24 for t in trees)
    stats = json.loads((run / "sft" / "distill_stats.json").read_text())
    assert stats["cf"] > 0
    checkpoint = run / "checkpoint"
    assert (checkpoint / "config.json").exists() and (checkpoint / "train.log").exists()
    manifest = json.loads((checkpoint / "leafe_manifest.json").read_text())
    assert manifest["prompt"] == {"history_window": 2, "max_new_tokens": 96, "env": "sokoban"}
    assert sorted(e["id"] for e in manifest["learned_from"] if e["stage"] == "leafe") == sorted(t["task"]["id"] for t in trees)
    assert manifest["lineage"] == ["tiny build", "leafe"]  # the tiny model's build rooms come along
    results = json.loads((run / "results.json").read_text())
    assert set(results["runs"]) == {"base", "leafe"}
    assert results["exploration"]["tasks"] == 4 and results["distillation"] == stats
    for label in ("base", "leafe"):
        assert json.loads((run / f"eval_{label}.json").read_text()) == results["runs"][label]
        assert results["runs"][label]["n_tasks"] == 2 and results["runs"][label]["n_samples"] == 2

    before = {p: p.stat().st_mtime_ns for p in [run / "trees.jsonl", checkpoint / "model.safetensors"]}
    again = leafe(*SMALL, f"hydra.run.dir={run}", cwd=tmp_path)
    assert again.returncode == 0, again.stderr[-3000:]
    assert "Train epoch" not in again.stderr + again.stdout  # the finished checkpoint is reused
    assert "Loading weights" not in again.stderr  # and no model is loaded: every output is on disk
    assert {p: p.stat().st_mtime_ns for p in before} == before
    assert len(list(read_jsonl(run / "trees.jsonl"))) == 4
    assert json.loads((run / "results.json").read_text())["runs"] == results["runs"]

    # a setting that would change the trees stops the rerun, naming it; nothing is lost
    changed = leafe(*SMALL, "method.explore.max_branches=2", f"hydra.run.dir={run}", cwd=tmp_path)
    assert changed.returncode == 1
    assert "trees.jsonl was made with other settings (explore.max_branches: 4 -> 2)" in changed.stderr
    assert "Traceback" not in changed.stderr and len(list(read_jsonl(run / "trees.jsonl"))) == 4

    # the checkpoint, evaluated on its own, gets the window it was trained with
    alone = leafe(f"model={checkpoint}", "env.history_window=null", "n_samples=2", "env.n_test=2", f"hydra.run.dir={tmp_path / 'alone'}", cwd=tmp_path)
    assert alone.returncode == 0, alone.stderr[-2000:]
    assert json.loads((tmp_path / "alone" / "results.json").read_text())["prompt"]["source"]["history_window"] == "command line"
    alone = leafe(f"model={checkpoint}", "n_samples=2", "env.n_test=2", f"hydra.run.dir={tmp_path / 'alone2'}", cwd=tmp_path)
    prompt = json.loads((tmp_path / "alone2" / "results.json").read_text())["prompt"]
    assert (prompt["history_window"], prompt["max_new_tokens"]) == (2, 96)  # the protocol it was trained with, not sokoban.yaml's 256
    assert prompt["source"]["max_new_tokens"] == f"{checkpoint}/leafe_manifest.json"


@pytest.mark.slow
def test_no_counterfactual_data_stops_unless_the_ablation_is_asked_for(tmp_path):
    run = tmp_path / "run"
    proc = leafe(*SMALL, "method.explore.max_depth=0", "method.distill.reh_fraction=1", f"hydra.run.dir={run}", cwd=tmp_path)
    assert proc.returncode == 1
    assert "stage 1 gave no counterfactual data (D_cf), so this would not be LEAFE: 4 trees, 0 branches" in proc.stderr
    assert "method.ablation=rehearsal_only" in proc.stderr and "Traceback" not in proc.stderr
    assert len(list(read_jsonl(run / "trees.jsonl"))) == 4


@pytest.mark.slow
def test_the_default_batch_is_checked_against_the_data_before_the_trainer_starts(tmp_path):
    run = tmp_path / "run"
    proc = leafe(*SMALL, "method.sft.train_batch_size=128", "method.sft.micro_train_batch_size=8", f"hydra.run.dir={run}", cwd=tmp_path)
    assert proc.returncode == 1
    assert "cannot fill one batch of 128 (method.sft.train_batch_size)" in proc.stderr
    assert "Train epoch" not in proc.stderr + proc.stdout and "Traceback" not in proc.stderr


@pytest.mark.slow
def test_a_run_killed_in_stage_1_and_resumed_is_the_run_it_would_have_been(tmp_path):
    """Every draw of a tree is seeded by the run's seed and the tree's task, node and step, so the
    trees grown after a kill -9 and a rerun are byte for byte those of an uninterrupted run."""
    import os
    import signal
    import subprocess
    import time

    from helpers import LEAFE

    args = ("method=leafe", "experiment=smoke", "env.n_train=8", "shard=0/1", "method.explore.max_concurrent_trees=2")
    whole = leafe(*args, f"hydra.run.dir={tmp_path / 'whole'}", cwd=tmp_path)
    assert whole.returncode == 0, whole.stderr[-2000:]
    killed = tmp_path / "killed"
    proc = subprocess.Popen([LEAFE, *args, f"hydra.run.dir={killed}"], cwd=tmp_path, start_new_session=True,
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)  # fmt: skip
    trees, deadline = killed / "trees.jsonl", time.time() + 300
    while (not trees.exists() or trees.read_text().count("\n") < 2) and time.time() < deadline:
        time.sleep(0.05)
    os.killpg(proc.pid, signal.SIGKILL)
    proc.wait()
    assert 2 <= trees.read_text().count("\n") < 8, "killed in the middle of stage 1"
    resumed = leafe(*args, f"hydra.run.dir={killed}", cwd=tmp_path)
    assert resumed.returncode == 0, resumed.stderr[-2000:]
    lines = lambda path: {json.loads(line)["task"]["id"]: line for line in path.read_text().splitlines()}  # noqa: E731
    assert lines(trees) == lines(tmp_path / "whole" / "trees.jsonl") and len(lines(trees)) == 8
