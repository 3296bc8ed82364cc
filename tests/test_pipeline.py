"""`leafe method=leafe` end to end on the tiny model: explore -> distill -> train -> evaluate -> report."""

import json
import subprocess
import sys
from pathlib import Path

import pytest

from leafe_recipe.records import read_jsonl

LEAFE = str(Path(sys.executable).parent / "leafe")
SMALL = ("method=leafe", "experiment=smoke", "env.n_train=4", "env.n_test=2", "n_samples=2", "budget=24")


def leafe(*overrides: str, cwd: Path) -> subprocess.CompletedProcess:
    return subprocess.run([LEAFE, *overrides], cwd=cwd, capture_output=True, text=True, timeout=900)


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
    assert sorted(t["task"]["id"] for t in trees) == [f"train-{i}" for i in range(4)]  # in the order they finish
    assert all(t["ledger"]["env_steps"] + t["ledger"]["replay_steps"] <= 24 for t in trees)
    stats = json.loads((run / "sft" / "distill_stats.json").read_text())
    assert stats["cf"] > 0
    checkpoint = run / "checkpoint"
    assert (checkpoint / "config.json").exists() and (checkpoint / "train.log").exists()
    assert json.loads((checkpoint / "leafe_prompt.json").read_text()) == {"history_window": 2, "env": "sokoban"}
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
    assert json.loads((tmp_path / "alone" / "results.json").read_text())["history_window"]["source"] == "command line"
    alone = leafe(f"model={checkpoint}", "n_samples=2", "env.n_test=2", "env.history_window=3", f"hydra.run.dir={tmp_path / 'alone2'}", cwd=tmp_path)
    window = json.loads((tmp_path / "alone2" / "results.json").read_text())["history_window"]
    assert window == {"value": 3, "source": "command line"}


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
