"""Head-to-head Pass@k of two runs on the same problems, with a paired bootstrap CI.

    leafe-compare RUN_A RUN_B [--task leafe_mbpp] [--ks 1,8,128] [--format markdown|latex|json]

A run is what lm-eval writes with `--output_path DIR --log_samples` (DIR, a folder below it,
or one samples_<task>_<date>.jsonl file): one JSON line per problem whose `correct` field
is the 0/1 list of its samples (the leafe tasks log it). Problems are paired by their id
(`doc.id`); per problem and k, Pass@k of each run is the unbiased estimator of
`leafe_recipe.passk` and the paired difference is d = Pass@k(A) - Pass@k(B). The table shows
both means, the mean difference and a percentile bootstrap confidence interval for it:
problems are resampled with replacement (the same resample for A and B, so the pairing is
kept), `resamples` times from a seeded generator, and the interval is the (1 - level)/2 and
(1 + level)/2 quantiles of the resampled mean differences (leafe_recipe/stats.py).
"""

from __future__ import annotations

import argparse
import json
import re
import sys
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from leafe_recipe.passk import ks_up_to, pass_at_k
from leafe_recipe.stats import StatsError, bootstrap_means, interval

_SAMPLES = re.compile(r"^samples_(?P<task>.+)_(?P<date>\d{4}-\d{2}-\d{2}T[0-9.\-]+)\.jsonl$")


class CompareError(StatsError):
    """The two runs cannot be compared as asked; the message says why."""


# --------------------------------------------------------------------------- #
# Statistics
# --------------------------------------------------------------------------- #


def paired_difference(
    n_a: Sequence[int],
    c_a: Sequence[int],
    n_b: Sequence[int],
    c_b: Sequence[int],
    ks: Sequence[int],
    resamples: int = 10_000,
    seed: int = 0,
    level: float = 0.95,
) -> list[dict[str, float]]:
    """Per k: mean Pass@k of A and of B, the mean paired difference A - B and its bootstrap CI.

    Problem i has n_a[i] samples of which c_a[i] are correct in run A (likewise B). Raises
    (passk's ValueError) when a k exceeds a problem's n in either run.
    """
    if not 0 < level < 1:
        raise CompareError(f"the confidence level must be in (0, 1), got {level}")
    pa = pass_at_k(n_a, c_a, ks)
    pb = pass_at_k(n_b, c_b, ks)
    if pa.shape != pb.shape:
        raise CompareError(f"runs A and B have {pa.shape[0]} and {pb.shape[0]} problems: pair them first")
    diff = pa - pb
    low, high = interval(bootstrap_means(diff, resamples, seed), level)
    return [
        {
            "k": int(k),
            "a": float(pa[:, j].mean()),
            "b": float(pb[:, j].mean()),
            "diff": float(diff[:, j].mean()),
            "ci_low": float(low[j]),
            "ci_high": float(high[j]),
        }
        for j, k in enumerate(ks)
    ]


# --------------------------------------------------------------------------- #
# Reading lm-eval's sample logs
# --------------------------------------------------------------------------- #


@dataclass
class Samples:
    """One run's per-problem correctness lists for one task."""

    task: str
    path: Path
    correct: dict[str, list[int]]
    problems: dict[str, str] = field(default_factory=dict)  # id -> the problem's Task JSON, when logged


def sample_files(run: str | Path) -> dict[str, list[Path]]:
    """Task name -> its samples files (oldest first) under `run` (a folder or one file)."""
    run = Path(run)
    if run.is_file():
        match = _SAMPLES.match(run.name)
        return {match["task"] if match else run.stem: [run]}
    if not run.is_dir():
        raise CompareError(f"{run}: no such file or folder")
    found: dict[str, list[tuple[str, Path]]] = {}
    for path in run.rglob("samples_*.jsonl"):
        match = _SAMPLES.match(path.name)
        if match:
            found.setdefault(match["task"], []).append((match["date"], path))
    if not found:
        raise CompareError(
            f"{run}: no lm-eval sample logs (samples_<task>_<date>.jsonl); run lm_eval with "
            "--output_path DIR --log_samples"
        )
    return {task: [p for _, p in sorted(files)] for task, files in found.items()}


def read_samples(path: str | Path, task: str = "") -> Samples:
    """The `correct` lists of a samples_<task>_<date>.jsonl file, keyed by problem id."""
    path = Path(path)
    out = Samples(task=task or path.stem, path=path, correct={})
    with path.open(encoding="utf-8") as f:
        for lineno, line in enumerate(f, start=1):
            if not line.strip():
                continue
            record = json.loads(line)
            correct = record.get("correct")
            if not isinstance(correct, list) or not correct:
                raise CompareError(
                    f"{path}:{lineno}: no per-sample `correct` list: not the log of a leafe task "
                    "(tasks/README.md), or written without --log_samples"
                )
            doc = record.get("doc") if isinstance(record.get("doc"), dict) else {}
            pid = str(doc.get("id", record.get("doc_id")))
            if pid in out.correct:
                raise CompareError(f"{path}:{lineno}: problem {pid!r} appears twice")
            out.correct[pid] = [int(bool(x)) for x in correct]
            if "task" in doc:
                out.problems[pid] = doc["task"]
    if not out.correct:
        raise CompareError(f"{path}: no problems")
    return out


def load_run(run: str | Path, task: str | None = None) -> dict[str, Samples]:
    """Task name -> its samples in `run`; the newest log where a task was run several times."""
    files = sample_files(run)
    if task is not None:
        if task not in files:
            raise CompareError(f"{run}: no sample log for task {task!r}; it has {', '.join(sorted(files))}")
        files = {task: files[task]}
    out = {}
    for name, paths in files.items():
        if len(paths) > 1:
            print(f"leafe-compare: {run}: {len(paths)} sample logs for {name}, using the newest {paths[-1].name}", file=sys.stderr)
        out[name] = read_samples(paths[-1], name)
    return out


# --------------------------------------------------------------------------- #
# Comparison and tables
# --------------------------------------------------------------------------- #


def compare(
    a: Samples,
    b: Samples,
    ks: Sequence[int] | None = None,
    resamples: int = 10_000,
    seed: int = 0,
    level: float = 0.95,
) -> dict[str, Any]:
    """Pair the problems of `a` and `b` by id and compare them (see the module docstring)."""
    common = [pid for pid in a.correct if pid in b.correct]
    if not common:
        raise CompareError(f"{a.path} and {b.path} share no problem ids: not the same task or data")
    for pid in common:
        if pid in a.problems and pid in b.problems and a.problems[pid] != b.problems[pid]:
            raise CompareError(f"problem {pid!r} is not the same problem in {a.path} and {b.path}")
    n_a = np.array([len(a.correct[p]) for p in common])
    n_b = np.array([len(b.correct[p]) for p in common])
    c_a = np.array([sum(a.correct[p]) for p in common])
    c_b = np.array([sum(b.correct[p]) for p in common])
    ks = list(ks) if ks else ks_up_to(int(min(n_a.min(), n_b.min())))
    for label, n in (("A", n_a), ("B", n_b)):
        if max(ks) > n.min():
            raise CompareError(
                f"k={max(ks)} exceeds the n={int(n.min())} samples of a problem in run {label}: "
                "Pass@k is only defined for k <= n; ask for smaller k (--ks)"
            )
    rows = paired_difference(n_a, c_a, n_b, c_b, ks, resamples, seed, level)
    return {
        "task": a.task,
        "problems": len(common),
        "only_a": len(a.correct) - len(common),
        "only_b": len(b.correct) - len(common),
        "n_a": [int(n_a.min()), int(n_a.max())],
        "n_b": [int(n_b.min()), int(n_b.max())],
        "resamples": resamples,
        "seed": seed,
        "level": level,
        "rows": rows,
    }


def _pct(x: float, digits: int, sign: bool = False) -> str:
    return f"{100 * x:{'+' if sign else ''}.{digits}f}"


def _n(span: list[int]) -> str:
    return str(span[0]) if span[0] == span[1] else f"{span[0]}-{span[1]}"


def format_result(result: dict[str, Any], labels: tuple[str, str] = ("A", "B"), fmt: str = "table", digits: int = 1) -> str:
    """The comparison as a plain table, Markdown, LaTeX (booktabs) or JSON; Pass@k in percent."""
    if fmt == "json":
        return json.dumps({**result, "labels": list(labels)}, indent=2)
    a, b = labels
    level = f"{100 * result['level']:g}%"
    head = ["k", f"Pass@k {a}", f"Pass@k {b}", f"{a} - {b}", f"{level} CI"]
    body = [
        [
            str(r["k"]),
            _pct(r["a"], digits),
            _pct(r["b"], digits),
            _pct(r["diff"], digits, sign=True),
            f"[{_pct(r['ci_low'], digits, sign=True)}, {_pct(r['ci_high'], digits, sign=True)}]",
        ]
        for r in result["rows"]
    ]
    caption = (
        f"{result['task']}: {result['problems']} problems paired, n = {_n(result['n_a'])} ({a}) / "
        f"{_n(result['n_b'])} ({b}) samples each; paired bootstrap over problems, {result['resamples']} "
        f"resamples, seed {result['seed']}; Pass@k in %"
    )
    if result["only_a"] or result["only_b"]:
        caption += f"; left out: {result['only_a']} problems only in {a}, {result['only_b']} only in {b}"
    if fmt == "markdown":
        lines = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
        lines += ["| " + " | ".join(row) + " |" for row in body]
        return caption + "\n\n" + "\n".join(lines)
    if fmt == "latex":

        def tex(s: str) -> str:
            return s.replace("\\", "\\textbackslash{}").replace("_", "\\_").replace("%", "\\%").replace("&", "\\&")

        lines = [
            f"% {tex(caption)}",
            "\\begin{tabular}{rrrrr}",
            "\\toprule",
            " & ".join(["$k$", f"Pass@$k$ {tex(a)}", f"Pass@$k$ {tex(b)}", "$\\Delta$", f"{tex(level)} CI"]) + " \\\\",
            "\\midrule",
            *[" & ".join(row) + " \\\\" for row in body],
            "\\bottomrule",
            "\\end{tabular}",
        ]
        return "\n".join(lines)
    if fmt != "table":
        raise CompareError(f"unknown format {fmt!r}: table, markdown, latex or json")
    widths = [max(len(r[i]) for r in [head, *body]) for i in range(len(head))]
    lines = ["  ".join(c.rjust(w) for c, w in zip(row, widths)) for row in [head, *body]]
    lines.insert(1, "  ".join("-" * w for w in widths))
    return caption + "\n\n" + "\n".join(lines)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(
        prog="leafe-compare",
        description="Pass@k of two runs (lm-eval --output_path folders written with --log_samples) on the same "
        "problems: both means, the paired difference and its bootstrap confidence interval over problems.",
    )
    parser.add_argument("run_a", help="run A: an lm-eval --output_path folder, a folder below it, or a samples_*.jsonl file")
    parser.add_argument("run_b", help="run B, the same")
    parser.add_argument("--task", help="the task to compare (default: every task both runs have)")
    parser.add_argument("--ks", help="comma-separated k (default: 1, 2, 4, ... up to the smallest n)")
    parser.add_argument("--resamples", type=int, default=10_000, help="bootstrap resamples (default 10000)")
    parser.add_argument("--seed", type=int, default=0, help="bootstrap seed (default 0)")
    parser.add_argument("--confidence", type=float, default=0.95, help="confidence level (default 0.95)")
    parser.add_argument("--format", choices=["table", "markdown", "latex", "json"], default="table")
    parser.add_argument("--labels", help="names of the runs, 'A,B' (default: the runs' folder names)")
    parser.add_argument("--digits", type=int, default=1, help="decimals of the percentages (default 1)")
    args = parser.parse_args(argv)
    try:
        ks = [int(k) for k in args.ks.split(",")] if args.ks else None
        labels = tuple(args.labels.split(",")) if args.labels else (Path(args.run_a).name, Path(args.run_b).name)
        if len(labels) != 2:
            raise CompareError(f"--labels needs two names, got {args.labels!r}")
        if labels[0] == labels[1]:
            labels = (f"A ({labels[0]})", f"B ({labels[1]})")
        runs_a, runs_b = load_run(args.run_a, args.task), load_run(args.run_b, args.task)
        tasks = [t for t in runs_a if t in runs_b]
        if not tasks:
            raise CompareError(
                f"the runs share no task: {args.run_a} has {', '.join(sorted(runs_a))}; "
                f"{args.run_b} has {', '.join(sorted(runs_b))}"
            )
        results = [compare(runs_a[t], runs_b[t], ks, args.resamples, args.seed, args.confidence) for t in sorted(tasks)]
    except (CompareError, ValueError, OSError) as err:
        raise SystemExit(f"leafe-compare: error: {err}") from None
    if args.format == "json":
        print(json.dumps([{**r, "labels": list(labels)} for r in results], indent=2))
    else:
        print("\n\n".join(format_result(r, labels, args.format, args.digits) for r in results))


if __name__ == "__main__":
    main()
