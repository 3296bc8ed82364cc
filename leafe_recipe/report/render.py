"""A report rendered: Markdown, LaTeX (booktabs) and Pass@k curves (PNG)."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from typing import Any

from leafe_recipe.report.collect import _search
from leafe_recipe.report.tables import Report, Table, _pct, _search_tables, row_name


def table_markdown(t: Table) -> str:
    lines = ["| " + " | ".join(t.header) + " |", "|" + "---|" * len(t.header)]
    lines += ["| " + " | ".join(c.replace("|", "/") for c in r) + " |" for r in t.rows]
    return "\n".join(lines + (["", *[f"- {n}" for n in t.notes]] if t.notes else []))


def search_table(folder: Path, search: dict[str, Any], resamples: int = 10_000) -> str:
    """What method=search_compare prints: its Table 3."""
    return "\n\n".join(table_markdown(t) for t in _search_tables([_search(search, folder)], resamples, 0, 0.95))


def to_markdown(rep: Report, preamble: list[str]) -> str:
    parts = ["# leafe-report", "", *preamble]
    for t in rep.tables:
        parts += ["", f"## {t.title}", "", table_markdown(t)]
    if rep.curves:
        parts += ["", "## Pass@k curves", "", *[f"![{title}](curves/{stem}.png)" for stem, title, _ in rep.curves]]
    return "\n".join(parts) + "\n"


def _tex(s: str) -> str:
    for a, b in (("\\", "\\textbackslash{}"), ("_", "\\_"), ("%", "\\%"), ("&", "\\&"), ("#", "\\#"), ("Δ", "$\\Delta$"), ("—", "---")):
        s = s.replace(a, b)
    return s


def to_latex(rep: Report, preamble: list[str]) -> str:
    parts = ["% leafe-report (booktabs): " + _tex(" ".join(preamble))]
    for t in rep.tables:
        parts += ["", "\\begin{table}[t]", "\\centering", "\\small", f"\\caption{{{_tex(t.title)}. {_tex(' '.join(t.notes[:1]))}}}",
                  "\\begin{tabular}{l" + "r" * (len(t.header) - 1) + "}", "\\toprule", " & ".join(map(_tex, t.header)) + " \\\\",
                  "\\midrule", *[" & ".join(map(_tex, r)) + " \\\\" for r in t.rows], "\\bottomrule", "\\end{tabular}",
                  *[f"% {_tex(n)}" for n in t.notes[1:]], "\\end{table}"]  # fmt: skip
    return "\n".join(parts) + "\n"


def plot_curves(rep: Report, folder: Path) -> list[Path]:
    """One PNG per (environment, model): Pass@k for k = 1..n on a log axis, one line per
    method with its CI shaded."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    folder.mkdir(parents=True, exist_ok=True)
    written = []
    for stem, title, rows in rep.curves:
        fig, ax = plt.subplots(figsize=(6, 4), dpi=120)
        for row, est in rows.items():
            ks = np.array(est.ks)
            (line,) = ax.plot(ks, 100 * est.mean, marker="o" if len(ks) < 12 else None, ms=3, label=row_name(row))
            ax.fill_between(ks, 100 * est.low, 100 * est.high, color=line.get_color(), alpha=0.15, linewidth=0)
        ax.set_xscale("log", base=2)
        ax.set_xlabel("k (samples per problem)")
        ax.set_ylabel("Pass@k (%)")
        ax.set_title(title, fontsize=10)
        ax.grid(True, which="both", alpha=0.3)
        ax.legend(fontsize=8)
        fig.tight_layout()
        path = folder / f"{stem}.png"
        fig.savefig(path)
        plt.close(fig)
        written.append(path)
    return written


def sharpening(rep: Report) -> list[str]:
    """Rows whose Pass@1 is above Base's while their Pass@n is below it (point estimates): the
    pattern of distribution sharpening the curves show."""
    lines = []
    for stem, title, rows in rep.curves:
        base = rows.get("base")
        for row, est in rows.items():
            if base is None or row == "base" or est.n != base.n:
                continue
            if est.mean[0] > base.mean[0] and est.mean[-1] < base.mean[-1]:
                lines.append(f"{title}: {row_name(row)} has Pass@1 {_pct(est.mean[0])} > Base {_pct(base.mean[0])} "
                             f"but Pass@{est.n} {_pct(est.mean[-1])} < Base {_pct(base.mean[-1])}")  # fmt: skip
    return lines
