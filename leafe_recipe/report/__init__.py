"""`leafe-report`: a sweep's results in the paper's shapes.

    leafe-report multirun/2026-12-01/10-00-00 [more run or sweep folders] [--reference grpo] [--out DIR]
    leafe-report --from-summary docs/micro_sokoban      # the same report, rebuilt from its committed cells/
    leafe-report --from-summary docs/micro_sokoban runs/more --out docs/micro_sokoban   # those cells and new runs'

The report reads every results.json under the folders given (one per sweep cell; a cell that
could not run holds `not_run`, one that failed `failed`, with the reason) and recomputes every
number from the per-sample correctness of lm-eval's logs (report/collect.py), writes the
compact per-cell files beside the report (cells/), and renders the tables (report/tables.py:
Tables 1-5, declared primary comparisons, adjusted secondary ones, budgets, the splits audit)
as Markdown and LaTeX with Pass@k curves (report/render.py).

Written to OUT (default: <first folder>/report): report.md, report.tex, report.json, curves/, cells/.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from leafe_recipe.compare import CompareError
from leafe_recipe.records import write_json
from leafe_recipe.report.collect import Collected, ReportError, collect, combine, read_cells, write_cells
from leafe_recipe.report.render import plot_curves, search_table, sharpening, to_latex, to_markdown
from leafe_recipe.report.tables import Report, build, explore_summary, ledger_table, markdown_table, paired_vs_base, paper_model

__all__ = [
    "Collected", "Report", "ReportError", "build", "collect", "explore_summary", "ledger_table", "main", "markdown_table",
    "paired_vs_base", "paper_model", "read_cells", "search_table",
]  # fmt: skip


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(
        prog="leafe-report",
        description="Tables in the paper's shapes (Markdown, LaTeX), paired comparisons, budgets and Pass@k curves "
        "from the results.json and lm-eval sample logs of `leafe` runs and sweeps.",
    )
    parser.add_argument("folders", nargs="*", type=Path, help="run or sweep folders (searched for results.json)")
    parser.add_argument("--from-summary", type=Path, help="a report folder's cells/: rebuild from them alone (no run folders "
                        "needed) or, with run folders, add those runs' cells to them (a study extended in another sitting)")
    parser.add_argument("--out", type=Path, help="where to write report.md/.tex/.json and curves/ (default: <first folder>/report)")
    parser.add_argument("--reference", default="grpo", help="the method the paired differences are against (default grpo)")
    parser.add_argument("--resamples", type=int, default=10_000, help="bootstrap resamples (default 10000)")
    parser.add_argument("--seed", type=int, default=0, help="bootstrap seed (default 0)")
    parser.add_argument("--confidence", type=float, default=0.95, help="confidence level (default 0.95)")
    parser.add_argument("--no-plots", action="store_true", help="skip the PNG curves")
    args = parser.parse_args(argv)
    if not args.folders and not args.from_summary:
        parser.error("give run or sweep folders, --from-summary REPORT_FOLDER, or both (that report's cells and the runs')")
    out = args.out or (args.from_summary if args.from_summary else args.folders[0] / "report")
    try:
        parts = ([read_cells(args.from_summary)] if args.from_summary else []) + ([collect(args.folders)] if args.folders else [])
        collected = combine(parts)
        rep = build(collected, args.reference, args.resamples, args.seed, args.confidence)
    except (ReportError, CompareError, ValueError, OSError) as err:
        raise SystemExit(f"leafe-report: error: {err}") from None
    n_not = len({e.source for e in collected.entries if e.absent})
    preamble = [
        f"From {collected.cells} cells in {', '.join(map(str, ([args.from_summary] if args.from_summary else []) + args.folders))} ({n_not} not run or failed). "
        "Every number is recomputed from per-sample correctness (lm-eval's logs, or the cells/ files that keep it): unbiased "
        f"Pass@k, mean over problems (and seeds); CIs are {100 * args.confidence:g}% percentile bootstrap intervals "
        f"({args.resamples} resamples, seed {args.seed}) over problems, and with several seeds over seeds and problems crossed "
        "(leafe_recipe/stats.py).",
        "",
        f"Command: `leafe-report {' '.join(sys.argv[1:] if argv is None else argv)}`",
    ]
    preamble += [f"\nNote: {n}" for n in collected.notes] + [f"\nSharpening: {s}" for s in sharpening(rep)]
    out.mkdir(parents=True, exist_ok=True)
    markdown = to_markdown(rep, preamble)
    (out / "report.md").write_text(markdown)
    (out / "report.tex").write_text(to_latex(rep, preamble))
    write_json(out / "report.json", {"command": preamble[2], **rep.data})
    if args.folders:
        write_cells(collected, out)
    pngs = [] if args.no_plots else plot_curves(rep, out / "curves")
    print(markdown)
    print(f"leafe-report: wrote {out / 'report.md'}, report.tex, report.json and {len(pngs)} curves in {out / 'curves'}")


if __name__ == "__main__":
    main()
