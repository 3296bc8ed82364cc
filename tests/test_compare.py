"""leafe-compare: paired Pass@k differences with a bootstrap CI, on hand-made sample logs."""

import json
from pathlib import Path

import numpy as np
import pytest

from leafe_recipe.compare import (
    CompareError,
    bootstrap_means,
    compare,
    load_run,
    main,
    paired_difference,
    read_samples,
)
from leafe_recipe.passk import pass_at_k

DATE = "2026-01-01T00-00-00.000000"


def write_run(folder: Path, correct: dict[str, list[int]], task: str = "leafe_mbpp", date: str = DATE, problem=None) -> Path:
    """A run in lm-eval's layout: <output_path>/<model>/samples_<task>_<date>.jsonl."""
    path = folder / "model" / f"samples_{task}_{date}.jsonl"
    path.parent.mkdir(parents=True, exist_ok=True)
    lines = [
        {
            "doc_id": i,
            "doc": {"id": pid, "env": "mbpp", "task": json.dumps(problem(pid) if problem else {"id": pid})},
            "correct": c,
            "pass@1": float(np.mean(c)),
        }
        for i, (pid, c) in enumerate(correct.items())
    ]
    path.write_text("".join(json.dumps(line) + "\n" for line in lines))
    return folder


def samples(correct: dict[str, list[int]], tmp_path: Path, name: str):
    return read_samples(next(write_run(tmp_path / name, correct).rglob("*.jsonl")), "leafe_mbpp")


RNG = np.random.default_rng(1)
BASE = {str(i): [int(x) for x in RNG.random(8) < p] for i, p in enumerate(RNG.random(40))}


def test_identical_runs_differ_by_exactly_zero(tmp_path):
    result = compare(samples(BASE, tmp_path, "a"), samples(BASE, tmp_path, "b"))
    assert result["problems"] == 40 and [r["k"] for r in result["rows"]] == [1, 2, 4, 8]
    for row in result["rows"]:
        assert row["a"] == row["b"]
        assert (row["diff"], row["ci_low"], row["ci_high"]) == (0.0, 0.0, 0.0)


def test_a_dominating_run_has_a_positive_difference_and_ci(tmp_path):
    # A succeeds at least once on every problem, B never: Pass@k(A) > Pass@k(B) on every problem, every k
    a = {pid: [1] + c[1:] for pid, c in BASE.items()}
    b = {pid: [0] * 8 for pid in BASE}
    result = compare(samples(a, tmp_path, "a"), samples(b, tmp_path, "b"))
    for row in result["rows"]:
        assert row["b"] == 0.0 and row["diff"] == row["a"] > 0
        assert 0 < row["ci_low"] <= row["diff"] <= row["ci_high"]
    # reversed, everything changes sign
    reverse = compare(samples(b, tmp_path, "b2"), samples(a, tmp_path, "a2"))
    for row, rev in zip(result["rows"], reverse["rows"]):
        assert (rev["diff"], rev["ci_low"], rev["ci_high"]) == pytest.approx((-row["diff"], -row["ci_high"], -row["ci_low"]))


def test_exact_statistics_on_two_problems():
    # A solves problem 0 always, problem 1 never; B never: d = [1, 0] for every k.
    rows = paired_difference([2, 2], [2, 0], [2, 2], [0, 0], [1, 2], resamples=10_000, seed=0)
    for row in rows:
        assert (row["a"], row["b"], row["diff"]) == (0.5, 0.0, 0.5)
        # the resampled mean is 0, 1/2 or 1 with probabilities 1/4, 1/2, 1/4: the 2.5% and 97.5% quantiles are 0 and 1
        assert (row["ci_low"], row["ci_high"]) == (0.0, 1.0)


def test_difference_is_the_mean_of_per_problem_passk_differences():
    n_a, c_a, n_b, c_b = [10, 12, 8], [3, 0, 8], [16, 16, 16], [1, 5, 2]
    rows = paired_difference(n_a, c_a, n_b, c_b, [1, 4, 8])
    a, b = pass_at_k(n_a, c_a, [1, 4, 8]).mean(0), pass_at_k(n_b, c_b, [1, 4, 8]).mean(0)
    assert [r["a"] for r in rows] == pytest.approx(a, abs=1e-15)
    assert [r["diff"] for r in rows] == pytest.approx(a - b, abs=1e-15)


def test_bootstrap_is_seeded_vectorised_and_unbiased():
    values = np.random.default_rng(0).random((500, 3))
    boot = bootstrap_means(values, 10_000, seed=7)
    assert boot.shape == (10_000, 3)
    np.testing.assert_array_equal(boot, bootstrap_means(values, 10_000, seed=7))
    assert not np.array_equal(boot, bootstrap_means(values, 10_000, seed=8))
    np.testing.assert_allclose(boot.mean(0), values.mean(0), atol=2e-3)
    # the spread is the standard error of the mean
    np.testing.assert_allclose(boot.std(0), values.std(0) / np.sqrt(500), rtol=0.05)


def test_problems_are_paired_by_id(tmp_path):
    a = {"x": [1, 1], "y": [0, 0], "z": [1, 0]}
    b = {"z": [1, 0], "w": [1, 1], "y": [0, 0], "x": [1, 1]}  # other order, one more problem
    result = compare(samples(a, tmp_path, "a"), samples(b, tmp_path, "b"))
    assert (result["problems"], result["only_a"], result["only_b"]) == (3, 0, 1)
    assert result["rows"][0]["diff"] == 0.0


def test_errors(tmp_path):
    a = samples({"x": [1, 0, 1, 1]}, tmp_path, "a")
    b = samples({"x": [1, 0]}, tmp_path, "b")
    with pytest.raises(CompareError, match=r"k=4 exceeds the n=2 samples of a problem in run B"):
        compare(a, b, ks=[1, 4])
    with pytest.raises(CompareError, match="share no problem ids"):
        compare(a, samples({"other": [1, 0]}, tmp_path, "c"))
    other = read_samples(next(write_run(tmp_path / "d", {"x": [1, 0]}, problem=lambda pid: {"id": pid, "v": 2}).rglob("*.jsonl")))
    with pytest.raises(CompareError, match="not the same problem"):
        compare(b, other)
    plain = tmp_path / "plain" / "samples_gsm8k_2026-01-01T00-00-00.jsonl"
    plain.parent.mkdir()
    plain.write_text(json.dumps({"doc_id": 0, "doc": {}, "exact_match": 1.0}) + "\n")
    with pytest.raises(CompareError, match="no per-sample `correct` list"):
        read_samples(plain)
    (tmp_path / "empty").mkdir()
    with pytest.raises(CompareError, match="no lm-eval sample logs"):
        load_run(tmp_path / "empty")


def test_the_newest_log_of_a_task_is_used(tmp_path):
    write_run(tmp_path / "run", {"x": [0, 0]}, date="2026-01-01T00-00-00.000000")
    write_run(tmp_path / "run", {"x": [1, 1]}, date="2026-02-01T00-00-00.000000")
    write_run(tmp_path / "run", {"x": [1, 0]}, task="leafe_humaneval")
    runs = load_run(tmp_path / "run")
    assert set(runs) == {"leafe_mbpp", "leafe_humaneval"} and runs["leafe_mbpp"].correct == {"x": [1, 1]}


def test_cli_table_markdown_latex_json(tmp_path, capsys):
    better = {pid: [1] * 8 for pid in BASE}
    run_a, run_b = write_run(tmp_path / "leafe", better), write_run(tmp_path / "base", BASE)
    main([str(run_a), str(run_b), "--resamples", "2000"])
    table = capsys.readouterr().out
    assert "leafe_mbpp: 40 problems paired, n = 8 (leafe) / 8 (base)" in table
    assert "Pass@k leafe" in table and "leafe - base" in table and "95% CI" in table
    main([str(run_a), str(run_b), "--format", "markdown", "--ks", "1,8", "--labels", "LEAFE,GRPO"])
    md = capsys.readouterr().out
    assert "| k | Pass@k LEAFE | Pass@k GRPO | LEAFE - GRPO | 95% CI |" in md and md.count("\n| ") == 3
    main([str(run_a), str(run_b), "--format", "latex", "--task", "leafe_mbpp"])
    tex = capsys.readouterr().out
    assert "\\begin{tabular}{rrrrr}" in tex and "leafe\\_mbpp" in tex and tex.count("\\\\\n") == 5
    main([str(run_a), str(run_b), "--format", "json", "--seed", "3", "--confidence", "0.9"])
    (result,) = json.loads(capsys.readouterr().out)
    expected = pass_at_k([8] * 40, [8] * 40, [1]).mean() - pass_at_k([8] * 40, [sum(c) for c in BASE.values()], [1]).mean()
    assert result["rows"][0]["diff"] == pytest.approx(expected) and result["level"] == 0.9 and result["seed"] == 3
    with pytest.raises(SystemExit, match="k=16 exceeds"):
        main([str(run_a), str(run_b), "--ks", "1,16"])
    with pytest.raises(SystemExit, match="no sample log for task 'nope'"):
        main([str(run_a), str(run_b), "--task", "nope"])
