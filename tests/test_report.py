"""leafe-report: the paper's tables from sweep cells, every number from the per-sample logs."""

import json
from pathlib import Path

import numpy as np
import pytest

from leafe_recipe.compare import compare, read_samples
from leafe_recipe.report import ReportError, build, collect, main, paired_vs_base, paper_model
from leafe_recipe.stats import bootstrap_means, holm, solved_within

DATE = "2026-01-01T00-00-00.000000"
TASKS = {"sokoban": "leafe_sokoban", "alfworld": "leafe_alfworld", "codecontests": "leafe_codecontests_mt", "mbpp": "leafe_mbpp"}


def log(folder: Path, env: str, correct: dict[str, list[int]]) -> Path:
    """An evaluation's samples in lm-eval's layout (what `evaluate` keeps as samples_dir)."""
    out = folder / f"{TASKS[env]}-{'0' * 16}" / "lm_eval" / "m"
    out.mkdir(parents=True, exist_ok=True)
    lines = [{"doc": {"id": pid, "task": json.dumps({"id": pid})}, "correct": c} for pid, c in correct.items()]
    (out / f"samples_{TASKS[env]}_{DATE}.jsonl").write_text("".join(json.dumps(x) + "\n" for x in lines))
    return out


def cell(sweep: Path, name: str, method: str, env: str = "sokoban", model: str = "tiny", seed: int = 0,
         runs: dict | None = None, also: dict | None = None, ledger: dict | None = None, **extra) -> Path:  # fmt: skip
    """One sweep cell's results.json; `runs` maps a label to its per-problem correct lists."""
    folder = sweep / name
    folder.mkdir(parents=True)
    config = {"method": {"name": method, "ablation": extra.pop("ablation", None)}, "env": {"name": env}, "primary": extra.pop("primary", []),
              "report_row": extra.pop("report_row", None)}  # fmt: skip
    summaries = {}
    for label, correct in (runs or {}).items():
        s = {"task": TASKS[env], "samples_dir": str(log(folder / "eval" / label, env, correct))}
        for other, c in ((also or {}).get(label) or {}).items():
            s.setdefault("also", {})[other] = {"task": TASKS[other], "samples_dir": str(log(folder / "eval" / f"{label}@{other}", other, c))}
        summaries[label] = s
    results = {"method": method, "env": env, "model": model, "seed": seed, "config": config, **extra}
    if "not_run" not in extra and "failed" not in extra:
        results["runs"] = summaries
        results["ledger"] = ledger
    (folder / "results.json").write_text(json.dumps(results))
    return folder


BASE = {"p1": [1, 0, 0, 0], "p2": [1, 1, 1, 1], "p3": [0, 0, 0, 0]}
BETTER = {"p1": [1, 1, 0, 0], "p2": [1, 1, 1, 1], "p3": [1, 0, 0, 0]}
LEDGER = {"tasks": 3, "env_steps": 40, "replay_steps": 8, "model_calls": 50, "gen_tokens": 900}


def report(*folders: Path, reference: str = "grpo") -> tuple[str, dict]:
    rep = build(collect(list(folders)), reference, resamples=500)
    from leafe_recipe.report import to_markdown

    return to_markdown(rep, []), rep.data


def test_pass_at_k_is_recomputed_from_the_per_sample_logs(tmp_path):
    cell(tmp_path, "0", "leafe", runs={"base": BASE, "leafe": BETTER}, ledger=LEDGER)
    md, data = report(tmp_path)
    # Pass@1: (1/4 + 1 + 0) / 3 = 41.7 and (2/4 + 1 + 1/4) / 3 = 58.3; Pass@4: 2/3 and 1
    assert "| Base | 41.7 [" in md and "| LEAFE | 58.3 [" in md
    assert "| method | Sokoban Pass@1 | Sokoban Pass@4 |" in md
    leafe = next(x for x in data["pass_at_k"] if x["row"] == "leafe")
    assert leafe["ks"] == [1, 2, 3, 4] and leafe["mean"][-1] == 1.0 and leafe["problems"] == 3


def test_a_cell_that_did_not_run_says_why_and_shows_no_number(tmp_path):
    cell(tmp_path, "0", "base", runs={"base": BASE})
    cell(tmp_path, "1", "grpo", not_run="GRPO through OpenRLHF needs CUDA GPUs. Use method.engine=trl")
    cell(tmp_path, "2", "leafe", failed="stage 1 gave no counterfactual data (D_cf)")
    md, data = report(tmp_path)
    assert "| GRPO | not run: GRPO through OpenRLHF needs CUDA GPUs | not run |" in md
    assert "| LEAFE | failed: stage 1 gave no counterfactual data (D_cf) | failed |" in md
    assert "GRPO on Sokoban: not run: GRPO through OpenRLHF needs CUDA GPUs. Use method.engine=trl" in md
    assert {x["row"] for x in data["absent"]} == {"grpo", "leafe"}


def test_a_base_model_evaluated_by_many_cells_is_one_row_and_a_cells_own_model_wins(tmp_path):
    cell(tmp_path, "0", "base", runs={"base": BASE})
    cell(tmp_path, "1", "leafe", runs={"base": BASE, "leafe": BETTER})
    cell(tmp_path, "2", "leafe_rl", runs={"base": BASE, "grpo": BASE, "leafe_rl": BETTER})
    cell(tmp_path, "3", "grpo", runs={"base": BASE, "grpo": BETTER})
    md, data = report(tmp_path)
    table1 = md.split("## Table 1")[1].split("\n## ")[0]
    assert table1.count("| Base |") == 1 and "| GRPO | 58.3" in table1  # GRPO from its own cell, not leafe_rl's
    assert sorted(x["row"] for x in data["pass_at_k"]) == ["base", "grpo", "leafe", "leafe_rl"]


def test_rehearsal_only_is_its_own_row_and_table_4_pairs_it_with_leafe(tmp_path):
    cell(tmp_path, "0", "leafe", runs={"base": BASE, "leafe": BETTER})
    cell(tmp_path, "1", "leafe", runs={"base": BASE, "leafe": BASE}, ablation="rehearsal_only")
    md, _ = report(tmp_path)
    assert "| LEAFE (rehearsal only) | 41.7" in md
    assert "## Table 4: rehearsal only vs full LEAFE" in md
    # LEAFE - rehearsal at Pass@1: (1/4 + 0 + 1/4) / 3 = +16.7
    assert "| Sokoban | tiny | 41.7 [" in md and "+16.7 [" in md


def test_the_paired_difference_is_leafe_compares(tmp_path):
    cell(tmp_path, "0", "leafe", runs={"base": BASE, "leafe": BETTER})
    cell(tmp_path, "1", "grpo", runs={"base": BASE, "grpo": BASE})
    _, data = report(tmp_path)
    rows = [p for p in data["comparisons"] if p["row"] == "leafe"]
    a = read_samples(next((tmp_path / "0").rglob("eval/leafe/**/samples_*.jsonl")))
    b = read_samples(next((tmp_path / "1").rglob("eval/grpo/**/samples_*.jsonl")))
    reference = compare(a, b, [1, 4], resamples=500)
    assert [r["k"] for r in rows] == [1, 4] and [r["diff"] for r in rows] == pytest.approx([r["diff"] for r in reference["rows"]])
    assert [r["ci"][0] for r in rows] == pytest.approx([r["ci_low"] for r in reference["rows"]])
    assert rows[0]["unit"] == "percentile bootstrap over problems"  # one seed


def test_several_seeds_average_and_add_a_ci_over_seeds_and_problems(tmp_path):
    for seed, (leafe, grpo) in enumerate([(BETTER, BASE), (BASE, BASE)]):
        cell(tmp_path, f"a{seed}", "leafe", seed=seed, runs={"base": BASE, "leafe": leafe})
        cell(tmp_path, f"b{seed}", "grpo", seed=seed, runs={"base": BASE, "grpo": grpo})
    md, data = report(tmp_path)
    leafe = next(x for x in data["pass_at_k"] if x["row"] == "leafe")
    assert leafe["seeds"] == [0, 1] and leafe["mean"][0] == pytest.approx((7 / 12 + 5 / 12) / 2)
    assert leafe["per_seed"][0][0] == pytest.approx(7 / 12) and leafe["per_seed"][1][0] == pytest.approx(5 / 12)
    rows = [p for p in data["comparisons"] if p["row"] == "leafe"]
    assert [r["per_seed"][1] for r in rows] == [0.0, 0.0] and "crossed" in rows[0]["unit"]
    assert "seeds 0, 1" in md and "over seeds and problems, crossed" in md


def test_per_seed_means_follow_the_seed_order_whatever_the_folder_order(tmp_path):
    cell(tmp_path, "10_leafe", "leafe", seed=1, runs={"base": BASE, "leafe": BASE})  # found before "9_leafe"
    cell(tmp_path, "9_leafe", "leafe", seed=0, runs={"base": BASE, "leafe": BETTER})
    _, data = report(tmp_path)
    leafe = next(x for x in data["pass_at_k"] if x["row"] == "leafe")
    assert leafe["seeds"] == [0, 1] and leafe["per_seed"][0][0] == pytest.approx(7 / 12) and leafe["per_seed"][1][0] == pytest.approx(5 / 12)


def test_the_seeds_x_problems_bootstrap_is_crossed_not_nested():
    """The same problems are evaluated under every seed: one draw of problems serves every seed, so
    identical seeds have exactly the spread of one seed (a nested bootstrap, drawing problems anew
    per seed, would shrink it by sqrt(2) and understate the problem-level variance)."""
    values = np.random.default_rng(0).random((30, 3))
    np.testing.assert_array_equal(bootstrap_means(values[None], 200, seed=3), bootstrap_means(values, 200, seed=3))
    two = bootstrap_means(np.stack([values, values]), 4000, seed=3)
    one = bootstrap_means(values, 4000, seed=3)
    assert abs(two.std(axis=0) / one.std(axis=0) - 1).max() < 0.1
    # seeds that differ by a constant add the seed-level spread on top
    shifted = bootstrap_means(np.stack([values, values + 0.5]), 4000, seed=3)
    assert (shifted.std(axis=0) > 1.5 * one.std(axis=0)).all()


def test_holm_adjusts_step_down_and_keeps_the_order():
    assert holm([0.01, 0.04, 0.03, 0.5]) == pytest.approx([0.04, 0.09, 0.09, 0.5])


def test_declared_primaries_are_reported_as_they_are_and_the_rest_adjusted(tmp_path):
    primary = ["leafe - grpo @ 1", "leafe - grpo @ max"]
    cell(tmp_path, "0", "leafe", runs={"base": BASE, "leafe": BETTER}, primary=primary)
    cell(tmp_path, "1", "grpo", runs={"base": BASE, "grpo": BASE}, primary=primary)
    md, data = report(tmp_path)
    assert "## Primary comparisons (declared in the experiment config before the run)" in md
    assert "| LEAFE - GRPO | Sokoban | tiny | 1 | +16.7 [" in md and "| LEAFE - GRPO | Sokoban | tiny | 4 | +33.3 [" in md
    first = {(c["row"], c["k"]): c for c in data["comparisons"]}
    assert first[("leafe", 1)]["primary"] and "p_holm" not in first[("leafe", 1)]
    base = first[("base", 1)]  # base - grpo is secondary: adjusted over the 2 secondary comparisons
    assert not base["primary"] and base["simultaneous_level"] == pytest.approx(1 - 0.05 / 2) and "p (Holm)" in md


def test_coding_and_out_of_distribution_tables(tmp_path):
    cell(tmp_path, "0", "leafe_rl", env="codecontests", runs={"base": BASE, "leafe_rl": BETTER},
         also={"base": {"mbpp": BASE}, "leafe_rl": {"mbpp": BETTER}})  # fmt: skip
    md, _ = report(tmp_path, reference="base")
    assert "## Table 2: coding — tiny" in md and "| CodeContests Pass@1 |" in md
    assert "## Table 5: out of distribution" in md and "| MBPP (trained on CodeContests) Pass@1 |" in md
    assert "## Paired difference vs Base — MBPP, model tiny, trained on CodeContests" in md


def test_budgets_come_from_the_ledgers(tmp_path):
    cell(tmp_path, "0", "leafe", runs={"base": BASE, "leafe": BETTER}, ledger=LEDGER)
    cell(tmp_path, "1", "imitation", runs={"base": BASE, "imitation": BASE}, ledger={**LEDGER, "env_steps": 0, "expert_steps": 7})
    md, _ = report(tmp_path)
    assert "| Imitation | 3 | 0 | 8 | 50 | 900 | 7 | - | - |" in md
    assert "| LEAFE | 3 | 40 | 8 | 50 | 900 | - | - | - |" in md
    cell(tmp_path, "2", "grpo", runs={"base": BASE, "grpo": BASE}, ledger={**LEDGER, "train_examples": 96, "gradient_steps": 12})
    md, _ = report(tmp_path)
    assert "| method | tasks | env_steps | replay_steps | model_calls | gen_tokens | expert_steps | train_examples | gradient_steps |" in md
    assert "| GRPO | 3 | 40 | 8 | 50 | 900 | - | 96 | 12 |" in md


def test_the_papers_numbers_appear_for_a_matching_model_marked_unverified(tmp_path):
    cell(tmp_path, "0", "base", model="Qwen/Qwen2.5-7B-Instruct", runs={"base": BASE})
    md, _ = report(tmp_path)
    assert "## The paper's numbers beside ours" in md and "verified against the PDF: False" in md
    assert "| Table 1 | Sokoban | Qwen/Qwen2.5-7B-Instruct | Base | 6.90 | 41.7 [" in md
    assert "| 43.80 | n = 4 |" in md  # our n is below 128: no Pass@128 of ours to set beside it
    md, _ = report(cell(tmp_path / "other", "0", "base", runs={"base": BASE}))
    assert "paper's numbers" not in md


@pytest.mark.parametrize(
    "ours, theirs",
    [("Qwen/Qwen2.5-7B-Instruct", "Qwen2.5-7B"), ("Qwen/Qwen2.5-72B-Instruct", "Qwen2.5-72B"),
     ("meta-llama/Llama-3.1-8B-Instruct", "Llama3.1-8B"), ("meta-llama/Llama-3.1-70B-Instruct", None),
     ("/ckpt/qwen2.5-7b-sft", "Qwen2.5-7B"), ("tiny", None)],
)  # fmt: skip
def test_paper_model_matching(ours, theirs):
    assert paper_model(ours, ["Qwen2.5-7B", "Qwen2.5-72B", "Llama3.1-8B"]) == theirs


def test_table_3_counts_a_task_solved_within_k_attempts(tmp_path):
    assert solved_within([[False, True], [False], [True, False, False]], [1, 2, 3]).tolist() == [[0, 1, 1], [0, 0, 0], [1, 1, 1]]
    folder = tmp_path / "s"
    folder.mkdir()
    attempts = {"independent": [[0, 0, 1], [0, 0, 0]], "refinement": [[0, 1], [0, 0]], "tree": [[1], [0, 1]]}
    files = {}
    for strategy, per_task in attempts.items():
        lines = [{"task": {"env": "sokoban", "id": str(i)}, "budget": 6, "model_calls": 6, "gen_tokens": 60,
                  "attempts": [{"success": bool(x), "steps": 2} for x in a]} for i, a in enumerate(per_task)]  # fmt: skip
        (folder / f"search_{strategy}.jsonl").write_text("".join(json.dumps(x) + "\n" for x in lines))
        files[strategy] = f"search_{strategy}.jsonl"
    search = {"budget": 6, "tasks": 2, "files": files, "model": "tiny", "env": "sokoban", "seed": 0}
    (folder / "results.json").write_text(json.dumps({"method": "search_compare", "env": "sokoban", "model": "tiny", "seed": 0,
                                                     "config": {"method": {"name": "search_compare"}}, "runs": {}, "search": search}))  # fmt: skip
    md, _ = report(tmp_path)
    assert "| strategy | solved in 1 | solved in 2 | solved in 3 |" in md
    assert "| Independent sampling | 0.0 [0.0, 0.0] | 0.0 [0.0, 0.0] | 50.0 [" in md
    assert "| LEAFE stage-1 tree | 50.0 [" in md and "tree - independent, solved within 3: +50.0 [" in md


def test_the_cli_writes_markdown_latex_json_and_one_png_per_environment(tmp_path, capsys):
    sweep = tmp_path / "sweep"
    cell(sweep, "0", "leafe", runs={"base": BASE, "leafe": BETTER})
    cell(sweep, "1", "leafe", env="alfworld", runs={"base": BASE, "leafe": BETTER})
    main([str(sweep), "--resamples", "200"])
    out = sweep / "report"
    assert "| Base | 41.7 [" in capsys.readouterr().out
    tex = (out / "report.tex").read_text()
    assert "\\begin{tabular}{lrrrr}" in tex and "Table 1: agentic environments --- tiny" in tex
    assert [p.name for p in sorted((out / "curves").glob("*.png"))] == ["alfworld_tiny.png", "sokoban_tiny.png"]
    assert (out / "curves" / "sokoban_tiny.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert json.loads((out / "report.json").read_text())["command"].startswith("Command: `leafe-report")
    # Table 1 keeps the paper's column order: ALFWorld before Sokoban
    assert "| method | ALFWorld Pass@1 | ALFWorld Pass@4 | Sokoban Pass@1 | Sokoban Pass@4 |" in (out / "report.md").read_text()


def test_a_moved_sweep_finds_its_logs_and_a_missing_log_is_a_clear_error(tmp_path):
    cell(tmp_path / "sweep", "0", "base", runs={"base": BASE})
    (tmp_path / "sweep").rename(tmp_path / "moved")
    md, _ = report(tmp_path / "moved")
    assert "| Base | 41.7 [" in md
    for p in (tmp_path / "moved").rglob("samples_*.jsonl"):
        p.unlink()
    with pytest.raises(ReportError, match="no lm-eval sample logs"):
        report(tmp_path / "moved")
    with pytest.raises(SystemExit, match="no results.json under"):
        main([str(tmp_path / "moved" / "0" / "eval")])


def test_a_run_prints_each_trained_model_paired_against_its_base(tmp_path):
    folder = cell(tmp_path, "0", "leafe", runs={"base": BASE, "leafe": BETTER})
    runs = json.loads((folder / "results.json").read_text())["runs"]
    for r in runs.values():
        r["n_samples"] = 4
    text = paired_vs_base(runs, resamples=200)
    # Pass@1 58.3 vs 41.7; Pass@4 100 vs 66.7, paired over the 3 problems
    assert "leafe_sokoban: 3 problems paired" in text
    lines = [line.split() for line in text.splitlines() if line[:1] in "14" and line.strip()]
    assert [row[:4] for row in lines] == [["1", "58.3", "41.7", "+16.7"], ["4", "100.0", "66.7", "+33.3"]]
    assert paired_vs_base({"leafe": runs["leafe"]}) == ""


def test_a_paired_difference_whose_ci_includes_zero_is_said_to_be_unresolved(tmp_path):
    never = {p: [0, 0, 0, 0] for p in BASE}
    once = {p: [1, 0, 0, 0] for p in BASE}  # +25 points at k = 1 on every problem: a CI of [+25, +25]
    folder = cell(tmp_path, "0", "leafe", runs={"base": never, "leafe": once, "same": never})
    runs = json.loads((folder / "results.json").read_text())["runs"]
    for r in runs.values():
        r["n_samples"] = 4
    text = paired_vs_base(runs, resamples=200)
    assert "same - base: the 95% CI includes 0 at k = 1, 4: this run does not resolve a difference there" in text
    assert "leafe - base: the 95% CI includes 0" not in text


def test_a_control_named_by_report_row_is_a_row_of_its_own_with_its_own_budget(tmp_path):
    cell(tmp_path, "a", "grpo", runs={"base": BASE, "grpo": BETTER}, ledger={**LEDGER, "gradient_steps": 160})
    cell(tmp_path, "b", "grpo", runs={"base": BASE, "grpo": BASE}, ledger={**LEDGER, "gradient_steps": 96}, report_row="grpo_equal_steps")
    md, data = report(tmp_path)
    assert "| GRPO | 58.3 [" in md and "| grpo_equal_steps | 41.7 [" in md
    budgets = md.split("## Budgets")[1]
    assert "| GRPO | 3 | 40 | 8 | 50 | 900 | - | - | 160 |" in budgets
    assert "| grpo_equal_steps | 3 | 40 | 8 | 50 | 900 | - | - | 96 |" in budgets


def test_a_row_over_fewer_seeds_than_the_table_says_so(tmp_path):
    for seed in (0, 1):
        cell(tmp_path, f"l{seed}", "leafe", seed=seed, runs={"base": BASE, "leafe": BETTER})
    cell(tmp_path, "g0", "grpo", seed=0, runs={"base": BASE, "grpo": BETTER})
    md, _ = report(tmp_path)
    assert "mean over 3 test problems and seeds 0, 1;" in md
    assert "- rows over other seeds: GRPO seeds 0\n" in md


def body(report_md: str) -> str:
    """A report.md without its preamble (which names the folders and the command)."""
    return report_md.split("Command:")[1].split("\n", 1)[1]


def test_the_report_rebuilds_from_its_committed_per_sample_files_alone(tmp_path):
    sweep = tmp_path / "sweep"
    for seed in (0, 1):
        cell(sweep, f"a{seed}", "leafe", seed=seed, runs={"base": BASE, "leafe": BETTER}, ledger=LEDGER, primary=["leafe - base @ 1"])
    cell(sweep, "b", "grpo", not_run="needs CUDA")
    main([str(sweep), "--resamples", "300", "--no-plots", "--out", str(tmp_path / "report")])
    original = (tmp_path / "report" / "report.md").read_text()
    cells = list((tmp_path / "report" / "cells").glob("*.json"))
    assert cells and sum(p.stat().st_size for p in cells) < 20_000  # kilobytes, committable
    import shutil

    shutil.rmtree(sweep)  # no run folder, no lm-eval log left: the cells are enough
    shutil.copytree(tmp_path / "report" / "cells", tmp_path / "committed" / "cells")
    main(["--from-summary", str(tmp_path / "committed"), "--resamples", "300", "--no-plots"])
    rebuilt = (tmp_path / "committed" / "report.md").read_text()
    assert body(rebuilt) == body(original) and "| LEAFE | 58.3 [" in rebuilt


def test_a_report_extended_by_new_runs_is_the_report_of_all_of_them(tmp_path):
    """A study run in two sittings: the first sitting's cells/ plus the second's run folders."""
    cell(tmp_path / "first", "a", "leafe", seed=0, runs={"base": BASE, "leafe": BETTER}, ledger=LEDGER)
    cell(tmp_path / "second", "b", "grpo", seed=0, runs={"base": BASE, "grpo": BASE}, ledger=LEDGER)
    at_once = tmp_path / "at_once"
    main([str(tmp_path / "first"), str(tmp_path / "second"), "--resamples", "300", "--no-plots", "--out", str(at_once)])
    extended = tmp_path / "extended"
    main([str(tmp_path / "first"), "--resamples", "300", "--no-plots", "--out", str(extended)])
    main(["--from-summary", str(extended), str(tmp_path / "second"), "--resamples", "300", "--no-plots", "--out", str(extended)])
    assert body((extended / "report.md").read_text()) == body((at_once / "report.md").read_text())
    assert len(list((extended / "cells").glob("0*.json"))) == 3  # base (once), LEAFE, GRPO


def test_the_committed_micro_study_is_what_its_cells_say(tmp_path):
    """docs/micro_sokoban/report.md is the study's record: anyone can recompute it from the cells."""
    import shutil

    committed = Path(__file__).parent.parent / "docs" / "micro_sokoban"
    shutil.copytree(committed / "cells", tmp_path / "cells")
    main(["--from-summary", str(tmp_path), "--no-plots"])
    assert body((tmp_path / "report.md").read_text()) == body((committed / "report.md").read_text())


def test_a_cell_run_on_overlapping_splits_marks_its_numbers(tmp_path):
    audit = {"splits": {"train": {"tasks": 4, "distinct": 4}, "test": {"tasks": 3, "distinct": 3}}, "manifest": None,
             "pairs": [{"a": "train", "b": "test", "exact": 2, "near": 0, "overlaps": 2, "examples": []}]}  # fmt: skip
    cell(tmp_path, "0", "leafe", runs={"base": BASE, "leafe": BETTER}, split="test", heldout={**audit, "flagged": audit["pairs"]})
    md, data = report(tmp_path)
    assert "| LEAFE | 58.3 [" in md and " †" in md.split("| LEAFE |")[1].split("\n")[0]
    assert "NOT held out by content (test vs train" in md and "## Splits audit" in md
    assert all(x["overlapping"] for x in data["pass_at_k"])
