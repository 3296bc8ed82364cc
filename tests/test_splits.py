"""Held out means held out (leafe_recipe/splits.py): content fingerprints, the audit, and the
app stopping before any compute when the evaluated tasks are not held out."""

import json
import shutil

import pytest

from conftest import NEEDS_MBPP, SHARED_DATA
from helpers import leafe
from leafe_recipe.envs.base import Task, get_family
from leafe_recipe.manifest import Manifest, inherit, learned, write
from leafe_recipe.splits import Overlap, audit, check

MBPP = str(SHARED_DATA / "mbpp" / "mbpp.jsonl")
CODE = get_family("mbpp")


def code_task(split: str, tid: str, text: str, tests: list[str]) -> Task:
    data = {"prompt": f"{text}\nYour code should pass tests like:\n{tests[0]}", "kind": "asserts", "public_tests": tests[:1], "hidden_tests": tests}
    return Task("mbpp", f"{split}-{tid}", data)


def test_a_coding_problem_is_the_same_under_case_whitespace_and_numbering():
    a = code_task("train", "1", "1. Write a function to  find the  Sum of a list.", ["assert f([1]) == 1"])
    b = code_task("test", "9", "write a function to find the sum of a list.", ["assert f([2]) == 2"])
    c = code_task("test", "8", "Reverse a string.", ["assert  f([1])==1".replace("==", " == ")])
    assert CODE.fingerprint(a)["statement"] == CODE.fingerprint(b)["statement"]
    assert CODE.fingerprint(a)["tests"] != CODE.fingerprint(b)["tests"]
    assert CODE.fingerprint(a)["tests"] == CODE.fingerprint(c)["tests"]  # same test inputs, another wording: the same problem too


def test_a_near_duplicate_statement_across_splits_is_found_by_lm_evals_janitor():
    train = [code_task("train", "1", "Write a function to search a literals string in a string and also find the location within the "
                       "original string where the pattern occurs by using regex.", ["assert g('a') == 1"])]  # fmt: skip
    test = [code_task("test", "2", "Write a function to search a literals string in a string and also find the location within the "
                      "original string where the pattern occurs.", ["assert h('b') == 2"]),
            code_task("test", "3", "Write a python function to count the set bits of a number.", ["assert k(1) == 1"])]  # fmt: skip
    report = audit({"train": train, "test": test}, CODE, None, "m")
    [pair] = report["pairs"]
    assert (pair["exact"], pair["near"]) == (0, 1) and "test mbpp/test-2 ~ train mbpp/train-1" in pair["examples"][0]
    with pytest.raises(Overlap, match=r"not held out by content: test vs train: 0 exact, 1 near.*allow_overlap=true"):
        check(report, "test", allow=False)
    assert check(report, "test", allow=True) == [report["pairs"][0]]


def test_what_a_model_learned_is_checked_against_the_evaluated_split():
    sokoban = get_family("sokoban")
    test = sokoban.tasks("test", 4)
    parent = Manifest(prompt=None, learned_from=learned(sokoban, test[:1], "micro build"), lineage=["micro build"])
    child = inherit(parent, "micro", "grpo", learned(sokoban, sokoban.tasks("train", 2), "grpo"), None, {"k": 1})
    grandchild = inherit(child, "ckpt", "leafe", [], None, {"k": 2})
    assert grandchild.lineage == ["micro build", "grpo", "leafe"] and len(grandchild.learned_from) == 3  # inherited through
    report = audit({"test": test}, sokoban, grandchild, "ckpt")
    [pair] = report["pairs"]
    assert (pair["a"], pair["exact"]) == ("model", 1) and "(micro build)" in pair["examples"][0]
    assert inherit(None, "Qwen/Qwen2.5-7B-Instruct", "leafe", [], None, {}).complete is False  # a hub model's data are unknown


@NEEDS_MBPP
def test_leafe_splits_prints_the_audit_and_fails_on_any_overlap(tmp_path):
    clean = leafe("env.n_test=4", cwd=tmp_path, script="leafe-splits", timeout=300)
    assert clean.returncode == 0, clean.stderr
    assert "| train | 64 | 64 |" in clean.stdout and "| model / test | 0 | 0 | - |" in clean.stdout and "no overlap" in clean.stdout
    mbpp = leafe("env=mbpp", f"env.tasks.path={MBPP}", "env.n_train=null", "env.n_test=null", cwd=tmp_path, script="leafe-splits", timeout=300)
    assert mbpp.returncode == 1
    assert "| train / test | 3 | 10 | test mbpp/216 = train mbpp/872;" in mbpp.stdout  # MBPP's own train/test duplicates
    small = leafe("env.tasks.dim=[5,5]", "env.tasks.min_solution_len=4", cwd=tmp_path, script="leafe-splits", timeout=300)
    assert small.returncode == 2 and "5x5, 1 box" in small.stderr and "8 distinct rooms up to symmetry" in small.stderr


@NEEDS_MBPP
def test_a_run_whose_test_tasks_were_trained_on_stops_before_any_compute(tmp_path):
    proc = leafe("method=leafe", "env=mbpp", f"env.tasks.path={MBPP}", "env.n_train=null", "env.n_test=null", f"hydra.run.dir={tmp_path / 'r'}",
                 cwd=tmp_path, timeout=300)  # fmt: skip
    assert proc.returncode == 1 and "Traceback" not in proc.stderr
    assert "the test tasks of mbpp are not held out by content: test vs train: 3 exact, 10 near" in proc.stderr
    assert "allow_overlap=true" in proc.stderr and "Loading weights" not in proc.stderr
    assert not (tmp_path / "r" / "trees.jsonl").exists()


@pytest.mark.slow
def test_allow_overlap_runs_and_every_affected_number_is_marked(tmp_path, tiny_model):
    """A checkpoint whose manifest holds two of the test rooms: stopped, then run on purpose."""
    sokoban = get_family("sokoban")
    checkpoint = tmp_path / "ckpt"
    shutil.copytree(tiny_model, checkpoint)
    write(checkpoint, Manifest(prompt=None, learned_from=learned(sokoban, sokoban.tasks("test", 2), "by hand"), lineage=["by hand"]))
    args = (f"model={checkpoint}", "n_samples=2", "env.n_test=3", "env.kwargs.max_steps=2", f"hydra.run.dir={tmp_path / 'r'}")
    stopped = leafe(*args, cwd=tmp_path)
    assert stopped.returncode == 1 and "test vs model: 2 exact, 0 near" in stopped.stderr
    ran = leafe(*args, "allow_overlap=true", cwd=tmp_path)
    assert ran.returncode == 0, ran.stderr[-2000:]
    assert "NOT held out, run with allow_overlap=true: test vs model: 2 exact" in ran.stdout
    results = json.loads((tmp_path / "r" / "results.json").read_text())
    assert results["heldout"]["flagged"][0]["exact"] == 2
    report = leafe(str(tmp_path / "r"), "--resamples", "100", "--no-plots", cwd=tmp_path, script="leafe-report", timeout=300)
    assert report.returncode == 0, report.stderr
    assert "| Base | " in report.stdout and " †" in report.stdout.split("| Base |")[1].split("\n")[0]
