"""The `leafe` console script as a user runs it."""

import json
import subprocess
import sys
from pathlib import Path

import pytest

from leafe_recipe.records import read_jsonl

LEAFE = str(Path(sys.executable).parent / "leafe")


def leafe(*overrides: str, cwd: Path) -> subprocess.CompletedProcess:
    return subprocess.run([LEAFE, *overrides], cwd=cwd, capture_output=True, text=True, timeout=600)


@pytest.mark.slow
def test_base_on_sokoban_with_the_tiny_model_prints_pass_at_k_and_writes_artefacts(tmp_path):
    run = tmp_path / "run"
    args = ("n_samples=4", "env.n_test=3", "env.kwargs.max_steps=3", f"hydra.run.dir={run}")
    proc = leafe(*args, cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr
    assert "| run | Pass@1 | Pass@2 | Pass@4 | turns | invalid |" in proc.stdout
    results = json.loads((run / "results.json").read_text())
    summary = results["runs"]["base"]
    assert (results["method"], results["env"], results["model"]) == ("base", "sokoban", "tiny")
    assert summary["n_tasks"] == 3 and summary["n_samples"] == 4
    assert list(summary["pass_at_k"]) == ["1", "2", "4"]
    assert summary == json.loads((run / "eval_base.json").read_text())
    assert results["history_window"] == {"value": 2, "source": "env config (sokoban)"}
    # the evaluation is lm-eval's: its per-sample log holds every episode
    [samples] = Path(summary["samples_dir"]).glob("samples_leafe_sokoban_*.jsonl")
    records = list(read_jsonl(samples))
    assert sorted(r["doc"]["id"] for r in records) == ["test-1000000", "test-1000001", "test-1000002"]
    assert all(len(r["correct"]) == 4 for r in records)
    # a rerun in the same folder resumes: the finished evaluation is reused, no model is loaded
    again = leafe(*args, cwd=tmp_path)
    assert again.returncode == 0, again.stderr
    assert "leafe-agent episodes" not in again.stderr and "Loading weights" not in again.stderr
    assert json.loads((run / "results.json").read_text())["runs"]["base"] == summary
    # ... but not when what it measured changed: 2 samples instead of 4 is evaluated anew
    fewer = leafe(*args[1:], "n_samples=2", cwd=tmp_path)
    assert fewer.returncode == 0, fewer.stderr
    assert json.loads((run / "results.json").read_text())["runs"]["base"]["n_samples"] == 2


def test_a_wrong_key_is_a_hydra_error_naming_it(tmp_path):
    proc = leafe("n_sample=4", cwd=tmp_path)
    assert proc.returncode == 1
    assert "Could not override 'n_sample'" in proc.stderr and "Traceback" not in proc.stderr


def test_a_wrong_group_value_lists_the_options(tmp_path):
    proc = leafe("env=sokobann", cwd=tmp_path)
    assert proc.returncode == 1
    assert "Could not find 'env/sokobann'" in proc.stderr and "sokoban" in proc.stderr


def test_backend_vllm_without_a_gpu_stops_with_what_to_do(tmp_path):
    proc = leafe("backend=vllm", f"hydra.run.dir={tmp_path / 'run'}", cwd=tmp_path)
    assert proc.returncode == 1
    assert "backend=vllm needs vLLM and a CUDA GPU" in proc.stderr


METHOD_RUNS = {
    "imitation": ([], {"base", "imitation"}, 2),
    "early_experience": ([], {"base", "early_experience_iwm"}, 2),
    "early_experience_sr": (["method=early_experience", "method.variant=sr"], {"base", "early_experience_sr"}, 2),
    "grpo": ([], {"base", "grpo"}, None),
    "leafe_rl": ([], {"base", "grpo", "leafe_rl"}, None),
}


@pytest.mark.slow
@pytest.mark.parametrize("name", list(METHOD_RUNS))
def test_every_method_runs_end_to_end_on_the_tiny_model(name, tmp_path):
    extra, labels, window = METHOD_RUNS[name]
    method = extra or [f"method={name}"]
    run = tmp_path / "run"
    args = (*method, "experiment=smoke", "env.n_train=4", "env.n_test=2", "n_samples=2", "budget=24", f"hydra.run.dir={run}")
    proc = leafe(*args, cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr[-3000:]
    results = json.loads((run / "results.json").read_text())
    assert set(results["runs"]) == labels and all(r["n_tasks"] == 2 for r in results["runs"].values())
    checkpoint = Path(results["checkpoint"])
    # each checkpoint carries the window it was trained with: GRPO's whole history, the SFT methods' env window
    assert json.loads((checkpoint / "leafe_prompt.json").read_text())["history_window"] == window
    if name in ("grpo", "leafe_rl"):
        grpo = results["ledger"] if name == "grpo" else results["grpo"]
        assert grpo["engine"] == "trl" and grpo["env_steps"] > 0 and grpo["passes"] == 1
        assert results["runs"]["grpo"]["history_window"] is None
    else:
        assert results["ledger"]["expert_steps"] > 0


SIMULATED = {
    "leafe-alfworld": ["method=leafe", "env=alfworld", "method.distill.cf_only_successful=false", "method.explore.max_branches=2"],
    "early_experience-scienceworld": ["method=early_experience", "env=scienceworld", "method.k=1", "env.kwargs.max_steps=60"],
    "grpo-alfworld": ["method=grpo", "env=alfworld", "method.group_size=2", "method.max_length=8192"],
}
TINY_SFT = ["method.sft.learning_rate=1e-3", "method.sft.train_batch_size=2", "method.sft.micro_train_batch_size=2", "method.sft.zero_stage=0"]


@pytest.mark.slow
@pytest.mark.parametrize("name", list(SIMULATED))
def test_methods_run_on_the_simulated_environments(name, tmp_path, monkeypatch):
    from conftest import SHARED_DATA

    if "alfworld" in name and not (SHARED_DATA / "alfworld").exists():
        pytest.skip(f"{SHARED_DATA / 'alfworld'} not found")
    monkeypatch.setenv("ALFWORLD_DATA", str(SHARED_DATA / "alfworld"))
    run = tmp_path / "run"
    sft = TINY_SFT if "grpo" not in name else []
    args = (*SIMULATED[name], *sft, "env.n_train=1", "env.n_test=1", "n_samples=1", "budget=12", "env.max_new_tokens=32", f"hydra.run.dir={run}")
    if "scienceworld" not in name:
        args = (*args, "env.kwargs.max_steps=4")
    proc = leafe(*args, cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr[-3000:]
    results = json.loads((run / "results.json").read_text())
    assert len(results["runs"]) == 2 and all(r["n_tasks"] == 1 for r in results["runs"].values())
    assert Path(results["checkpoint"], "leafe_prompt.json").exists()
