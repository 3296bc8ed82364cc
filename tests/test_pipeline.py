"""`leafe method=leafe` end to end on the tiny model: explore -> distill -> train -> evaluate -> report."""

import json
import subprocess
import sys
from pathlib import Path

import pytest

from leafe_recipe.records import read_jsonl

LEAFE = str(Path(sys.executable).parent / "leafe")
SMALL = ("method=leafe", "experiment=smoke", "env.n_train=4", "env.n_test=2", "n_samples=2", "method.explore.budget=24")


def leafe(*overrides: str, cwd: Path) -> subprocess.CompletedProcess:
    return subprocess.run([LEAFE, *overrides], cwd=cwd, capture_output=True, text=True, timeout=900)


@pytest.mark.slow
def test_leafe_runs_every_stage_and_a_rerun_resumes_without_redoing_any(tmp_path):
    run = tmp_path / "run"
    proc = leafe(*SMALL, f"hydra.run.dir={run}", cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert "| base |" in proc.stdout and "| leafe |" in proc.stdout and "| ledger | value |" in proc.stdout
    trees = list(read_jsonl(run / "trees.jsonl"))
    assert sorted(t["task"]["id"] for t in trees) == [f"train-{i}" for i in range(4)]  # in the order they finish
    assert all(t["ledger"]["env_steps"] + t["ledger"]["replay_steps"] <= 24 for t in trees)
    stats = json.loads((run / "sft" / "distill_stats.json").read_text())
    assert stats["cf"] + stats["reh"] > 0
    assert (run / "checkpoint" / "config.json").exists() and (run / "checkpoint" / "train.log").exists()
    results = json.loads((run / "results.json").read_text())
    assert set(results["runs"]) == {"base", "leafe"}
    assert results["exploration"]["tasks"] == 4 and results["distillation"] == stats
    for label in ("base", "leafe"):
        assert json.loads((run / f"eval_{label}.json").read_text()) == results["runs"][label]
        assert results["runs"][label]["n_tasks"] == 2 and results["runs"][label]["n_samples"] == 2

    before = {p: p.stat().st_mtime_ns for p in [run / "trees.jsonl", run / "checkpoint" / "model.safetensors"]}
    again = leafe(*SMALL, f"hydra.run.dir={run}", cwd=tmp_path)
    assert again.returncode == 0, again.stderr[-3000:]
    assert "Train epoch" not in again.stderr + again.stdout  # the finished checkpoint is reused
    assert {p: p.stat().st_mtime_ns for p in before} == before
    assert len(list(read_jsonl(run / "trees.jsonl"))) == 4
    assert json.loads((run / "results.json").read_text())["runs"] == results["runs"]


@pytest.mark.slow
def test_no_training_data_stops_with_what_to_change_and_keeps_the_trees(tmp_path):
    run = tmp_path / "run"
    proc = leafe(*SMALL, "method.explore.max_depth=0", "method.distill.reh_fraction=0", f"hydra.run.dir={run}", cwd=tmp_path)
    assert proc.returncode == 1
    assert "stage 1 produced no training data: 0 branches" in proc.stderr
    assert len(list(read_jsonl(run / "trees.jsonl"))) == 4
