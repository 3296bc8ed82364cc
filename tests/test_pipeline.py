"""The `leafe` app (leafe_recipe/pipeline.py) and `leafe-splits` as a user runs them."""

import json
import subprocess
from pathlib import Path

import pytest

from helpers import LEAFE, leafe
from leafe_recipe.envs.base import get_family
from leafe_recipe.records import read_jsonl


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
    assert results["prompt"] == {"history_window": 2, "max_new_tokens": 256, "source": {
        "history_window": "env config (sokoban)", "max_new_tokens": "env config (sokoban)"}}
    assert results["split"] == "test" and results["heldout"]["flagged"] == []
    # the evaluation is lm-eval's: its per-sample log holds every episode
    [samples] = Path(summary["samples_dir"]).glob("samples_leafe_sokoban_*.jsonl")
    records = list(read_jsonl(samples))
    assert sorted(r["doc"]["id"] for r in records) == sorted(t.id for t in get_family("sokoban").tasks("test", 3))
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


SWEEP_CELLS = {  # method -> the runs its results.json holds
    "base": {"base"},
    "imitation": {"base", "imitation"},
    "early_experience": {"base", "early_experience_iwm"},
    "leafe_rehearsal_only": {"base", "leafe"},
    "leafe_rl": {"base", "grpo", "leafe_rl"},
    "search_compare": set(),
    "ace": {"base", "ace"},
}


@pytest.mark.slow
def test_a_sweep_of_every_method_runs_end_to_end_and_leafe_report_renders_it(tmp_path):
    sweep = tmp_path / "sweep"
    methods = ",".join([*SWEEP_CELLS, "grpo"])
    # ++method.engine=openrlhf: method=grpo cannot run here (no CUDA), so the sweep records it and goes on
    # one prompt protocol for every cell: the whole history, which GRPO's one-sequence episodes need
    args = ("-m", f"method={methods}", "experiment=smoke", "env.history_window=null", "++method.engine=openrlhf", "env.n_train=4",
            "env.n_test=2", "n_samples=2", "budget=24", "++method.distill.reh_fraction=1.0", f"hydra.sweep.dir={sweep}")  # fmt: skip
    proc = leafe(*args, cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr[-3000:]
    cells = {r["method"] + ("_rehearsal_only" if r["config"]["method"].get("ablation") else ""): r
             for r in (json.loads(p.read_text()) for p in sweep.glob("*/results.json"))}  # fmt: skip
    assert cells["grpo"]["not_run"].startswith("method.engine=openrlhf needs CUDA GPUs and vLLM")
    reh = cells.pop("leafe_rehearsal_only")
    if "failed" in reh:  # the tiny model solved no train room: no D_reh; recorded, and the sweep went on
        assert reh["failed"].startswith("rehearsal-only ablation with no rehearsal data")
    else:
        cells["leafe_rehearsal_only"] = reh
    for name, results in cells.items():
        if name == "grpo":
            continue
        assert set(results["runs"]) == SWEEP_CELLS[name] and all(r["n_tasks"] == 2 for r in results["runs"].values())
        # one protocol: every cell's evaluations, and every checkpoint's training prompts, use the run's
        assert results["prompt"]["history_window"] is None and all(r["history_window"] is None for r in results["runs"].values())
        if name not in ("base", "search_compare", "ace"):
            manifest = json.loads(Path(results["checkpoint"], "leafe_manifest.json").read_text())
            assert manifest["prompt"] == {"history_window": None, "max_new_tokens": 96, "env": "sokoban"}
    for data in sweep.glob("*/sft/*.jsonl"):  # every SFT method's training prompts are the protocol's: the whole history
        assert all("are omitted" not in r["prompt"][1]["content"] for r in read_jsonl(data)), data
    assert cells["leafe_rl"]["grpo"]["engine"] == "trl"
    lineage = json.loads(Path(cells["leafe_rl"]["checkpoint"], "leafe_manifest.json").read_text())["lineage"]
    assert lineage == ["tiny build", "grpo", "leafe"]  # LEAFE + RL inherits GRPO's train tasks, and the tiny model's
    assert cells["imitation"]["ledger"]["expert_steps"] > 0
    assert set(cells["search_compare"]["search"]["files"]) == {"independent", "refinement", "tree"}
    assert Path(cells["ace"]["playbook"]).exists() and cells["ace"]["ledger"]["rounds"] > 0
    # the base model was evaluated once for the whole sweep: every later cell reuses that evaluation
    base = [line for line in proc.stdout.splitlines() if line.startswith("[evaluate base]")]
    assert len(base) >= 4 and sum("reused from" in line for line in base) == len(base) - 1

    report = subprocess.run([LEAFE + "-report", str(sweep), "--resamples", "200"], capture_output=True, text=True, timeout=300)
    assert report.returncode == 0, report.stderr
    md = (sweep / "report" / "report.md").read_text()
    for row in ("Base", "Imitation", "Early Experience (IWM)", "ACE", "LEAFE + RL"):
        assert f"| {row} | " in md.split("## Table 1")[1].split("\n## ")[0]
    assert "| GRPO | not run: method.engine=openrlhf needs CUDA GPUs and vLLM" in md
    assert "## Table 3: stage 1 as a search — tiny, Sokoban" in md and "## Budgets — Sokoban, model tiny" in md
    assert (sweep / "report" / "curves" / "sokoban_tiny.png").exists() and (sweep / "report" / "report.tex").exists()


SIMULATED = {
    "leafe-alfworld": ["method=leafe", "env=alfworld", "method.distill.cf_only_successful=false", "method.explore.max_branches=2"],
    "early_experience-scienceworld": ["method=early_experience", "env=scienceworld", "method.k=1", "env.kwargs.max_steps=60"],
    "grpo-alfworld": ["method=grpo", "env=alfworld", "env.history_window=null", "method.group_size=2", "method.max_length=8192"],
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
    assert Path(results["checkpoint"], "leafe_manifest.json").exists()
