"""The judges: stdin/stdout programs against expected outputs (CodeContests) and functions
against assert tests (MBPP, HumanEval), and running many of them at once."""

from __future__ import annotations

import ast
import json
import math
import os
import signal
import warnings
from collections.abc import Iterable, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field

from . import probe, runs
from .checker import CODECONTESTS_FLOAT_TOLERANCE, outputs_match
from .model import Execution, Isolation, Judgement, Limits, Verdict

_MEMORY_PATTERNS = ("MemoryError", "Cannot allocate memory", "std::bad_alloc", "out of memory")
_MAX_MESSAGE = 64 << 20  # the largest value that crosses between the tests' and the submission's processes


def _normalise_source(code: str) -> str:
    # Python's tokenizer reads \r\n and \r as newlines too; normalising first keeps our
    # line arithmetic (which test failed) equal to the tokenizer's.
    return code.replace("\r\n", "\n").replace("\r", "\n")


def _encode(text: str) -> bytes:
    return text.encode("utf-8", errors="surrogateescape")


def run_program(code: str, stdin: str = "", limits: Limits | None = None) -> Execution:
    """Run ``code`` as a sandboxed Python program (``main.py``), feeding it ``stdin``.

    Returns the raw :class:`Execution`; never raises for anything the program does (only
    :class:`SandboxError` when the sandbox itself cannot work).
    """
    limits = limits or Limits()
    spec = runs.Spec("program", {"payload": _encode(_normalise_source(code)), "stdin": _encode(stdin)})
    outcome, iso = probe.run(spec, limits)
    return _execution(outcome, iso)


def _execution(
    outcome: runs.Outcome, iso: Isolation, prefix: str = "", returncode: int | None = None, cpu_s: float | None = None
) -> Execution:
    """The Execution of the run's program (or of one of its two processes: `prefix`
    "candidate_" names the submission's streams, whose exit the tests' process reported)."""
    stderr = outcome.outputs[prefix + "stderr"].decode("utf-8", errors="replace")
    if outcome.workdir != runs.VIEW_WORKDIR:  # a random host path: keep stderr the same from run to run
        stderr = stderr.replace(outcome.workdir + "/", "").replace(outcome.workdir, ".")
    returncode = outcome.returncode if not prefix else returncode
    truncated = bool({prefix + "stdout", prefix + "stderr"} & outcome.truncated) or returncode == -signal.SIGXFSZ
    return Execution(
        stdout=outcome.outputs[prefix + "stdout"].decode("utf-8", errors="replace"), stderr=stderr,
        returncode=returncode, wall_s=outcome.wall_s, cpu_s=outcome.cpu_s if cpu_s is None else cpu_s,
        timed_out=outcome.timed_out, output_truncated=truncated, isolation=iso,
    )  # fmt: skip


def _truncate(text: str, limit: int = 1000) -> str:
    return text if len(text) <= limit else text[:limit] + f"\n... [{len(text) - limit} more characters]"


def _tail(text: str, lines: int = 20, limit: int = 2000) -> str:
    kept = "\n".join(text.rstrip("\n").splitlines()[-lines:])
    return "... " + kept[-limit:] if len(kept) > limit else kept


def _signal_name(sig: int) -> str:
    try:
        return signal.Signals(sig).name
    except ValueError:
        return f"signal {sig}"


def _failure_verdict(ex: Execution, limits: Limits) -> tuple[Verdict, str] | None:
    """Verdict for a run that did not finish normally; None if it exited 0."""
    tail = _tail(ex.stderr)
    sig = ex.signal
    if ex.timed_out:
        return Verdict.TIMEOUT, f"Time limit exceeded (wall clock {limits.wall_s:g} s)."
    if ex.output_truncated or "File too large" in tail:
        return Verdict.OUTPUT_LIMIT, f"Output limit exceeded ({limits.output_bytes} bytes)."
    # RLIMIT_CPU kills with SIGKILL at ceil(cpu_s), and the judge sent no SIGKILL (no deadline,
    # no output cap). The CPU time that rusage reports can fall short of the kernel's count by
    # the time a virtual machine's CPU was taken by its host (steal time): half suffices.
    if sig == signal.SIGXCPU or (sig == signal.SIGKILL and ex.cpu_s >= 0.5 * math.ceil(limits.cpu_s)):
        return Verdict.TIMEOUT, f"Time limit exceeded (CPU {limits.cpu_s:g} s)."
    if ex.returncode != 0 and "No space left on device" in tail:
        return Verdict.OUTPUT_LIMIT, f"Output limit exceeded (the working directory holds {limits.disk_mb} MB)."
    if ex.returncode != 0 and any(p in tail for p in _MEMORY_PATTERNS):
        return Verdict.MEMORY_LIMIT, f"Memory limit exceeded ({limits.memory_mb} MB).\n{tail}"
    if ex.returncode is None:
        return Verdict.RUNTIME_ERROR, "The program's exit status was lost."
    if sig is not None:
        return Verdict.RUNTIME_ERROR, f"Killed by {_signal_name(sig)}." + ("\n" + tail if tail else "")
    if ex.returncode != 0:
        return Verdict.RUNTIME_ERROR, tail or f"Exit status {ex.returncode}."
    return None


# --------------------------------------------------------------------------- #
# stdin/stdout
# --------------------------------------------------------------------------- #


def judge_stdio(
    code: str,
    tests: Sequence[tuple[str, str]],
    limits: Limits | None = None,
    stop_at_first_failure: bool = True,
    *,
    float_tol: float = CODECONTESTS_FLOAT_TOLERANCE,
) -> Judgement:
    """Judge a stdin/stdout program on ``(input, expected_output)`` pairs.

    One fresh sandboxed process per test (so tests cannot leak state into each other); the
    outputs are compared by the judge with CodeContests' rule (:func:`outputs_match`), the
    expected output never reaching the program. The verdict is that of the first failing
    test; with ``stop_at_first_failure=False`` every test is run (``tests_passed`` then
    counts them all).
    """
    limits = limits or Limits()
    first: Judgement | None = None
    passed = run = 0
    wall = 0.0
    for i, (inp, expected) in enumerate(tests):
        ex = run_program(code, inp, limits)
        run += 1
        wall += ex.wall_s
        failure = _failure_verdict(ex, limits)
        if failure is None and outputs_match(expected, ex.stdout, float_tol=float_tol):
            passed += 1
            continue
        if first is None:
            first = _stdio_failure(i, inp, expected, ex, failure)
        if stop_at_first_failure:
            break
    result = first or Judgement(Verdict.PASSED, f"All {run} tests passed.")
    result.tests_run, result.tests_passed, result.wall_s = run, passed, wall
    return result


def _stdio_failure(i: int, inp: str, expected: str, ex: Execution, failure: tuple[Verdict, str] | None) -> Judgement:
    common = dict(failed_test=i, input=_truncate(inp), stderr=_tail(ex.stderr), returncode=ex.returncode)
    if failure is not None:
        return Judgement(failure[0], f"Test {i + 1}: {failure[1]}", **common)
    details = (
        f"Test {i + 1}: wrong answer.\nInput:\n{_truncate(inp, 500)}\nExpected output:\n{_truncate(expected, 500)}\n"
        f"Program output:\n{_truncate(ex.stdout, 500)}"
    )
    return Judgement(Verdict.WRONG_ANSWER, details, expected=_truncate(expected), actual=_truncate(ex.stdout), **common)


# --------------------------------------------------------------------------- #
# assert tests
# --------------------------------------------------------------------------- #


def judge_asserts(
    code: str,
    tests: str | Sequence[str],
    limits: Limits | None = None,
    *,
    setup: str = "",
    entry_point: str | None = None,
    provides: Sequence[str] = (),
) -> Judgement:
    """Judge function code against ``assert`` tests: passes if every test runs to the end.

    Two sandboxed processes: the submission's runs ``code``; the tests' process runs
    ``setup`` (the task's own code: MBPP's setup code, HumanEval's prompt with its helpers),
    then ``tests`` (joined by newlines if a list), then ``check(entry_point)`` if
    ``entry_point`` is given (HumanEval's convention). The tests reach the submission only
    through the boundary described in :mod:`leafe_recipe.sandbox`: the names they use that
    neither the setup nor the builtins define, plus ``provides`` and ``entry_point``, which
    always come from the submission (MBPP task 126 tests a function named ``sum``: see
    :func:`provided_names`). Only the tests' process can report the verdict.

    A failing ``assert`` gives ``wrong_answer`` with the assert's line; an exception the
    submission raises while a test calls it fails that test (``runtime_error``, or
    ``memory_limit`` for ``MemoryError``) even if the test catches it. ``failed_test`` is
    the index of the failing test in the list (or the 0-based line of the tests text).
    """
    limits = limits or Limits()
    test_list = [_normalise_source(t) for t in ([tests] if isinstance(tests, str) else tests)]
    body = "\n".join(test_list) + (f"\ncheck({entry_point})\n" if entry_point else "\n")
    provided = list(dict.fromkeys(list(provides) + ([entry_point] if entry_point else [])))
    payload = json.dumps({"setup": _normalise_source(setup), "tests": body, "provides": provided})
    files = {"payload": _encode(payload), "candidate_payload": _encode(_normalise_source(code)), "stdin": b""}
    streams = ("stdout", "stderr", "candidate_stdout", "candidate_stderr", "report")
    outcome, iso = probe.run(runs.Spec("asserts", files, streams, _MAX_MESSAGE), limits)
    report = _parse_report(outcome.outputs["report"])
    ended = (report or {}).get("candidate") or {}
    returncode = os.waitstatus_to_exitcode(ended["status"]) if "status" in ended else None
    submission_ex = _execution(outcome, iso, "candidate_", returncode, ended.get("cpu_s", 0.0))
    judgement = _assert_verdict(report, _execution(outcome, iso), submission_ex, limits)
    judgement.tests_run, judgement.wall_s = len(test_list), outcome.wall_s
    judgement.stderr, judgement.returncode = _tail(submission_ex.stderr), submission_ex.returncode
    if judgement.passed:
        judgement.tests_passed, judgement.details = len(test_list), f"All {len(test_list)} tests passed."
    else:
        judgement.failed_test = _failed_test(judgement.failed_test, test_list, isinstance(tests, str))
    return judgement


def _parse_report(report: bytes) -> dict | None:
    try:
        parsed = json.loads(report) if report else None
    except ValueError:
        return None
    return parsed if isinstance(parsed, dict) else None


def _assert_verdict(report: dict | None, tests_ex: Execution, submission_ex: Execution, limits: Limits) -> Judgement:
    """The verdict from the tests' report, or, where the submission's process ended (or
    the report is missing), from how that process ended. Here ``failed_test`` holds the
    failing line of the tests text (1-based) until `judge_asserts` maps it to a test."""
    if tests_ex.timed_out:
        return Judgement(Verdict.TIMEOUT, f"Time limit exceeded (wall clock {limits.wall_s:g} s).")
    if submission_ex.output_truncated or tests_ex.output_truncated:
        return Judgement(Verdict.OUTPUT_LIMIT, f"Output limit exceeded ({limits.output_bytes} bytes).")
    if report is not None and report.get("passed") is True and tests_ex.returncode == 0:
        return Judgement(Verdict.PASSED)
    line = report.get("line") if report is not None and report.get("stage") == "tests.py" else None
    if report is None or report.get("candidate_ended"):
        failure = _failure_verdict(submission_ex, limits) or (report is None and _failure_verdict(tests_ex, limits))
        if failure:
            return Judgement(failure[0], failure[1], failed_test=line)
        if report is None:
            return Judgement(Verdict.RUNTIME_ERROR, "The judge's test process ended without a verdict.")
        return Judgement(Verdict.RUNTIME_ERROR, "The program exited before all the tests ran.", failed_test=line)
    verdict = Verdict(report.get("verdict", "runtime_error"))
    message = str(report.get("message", ""))
    if verdict is Verdict.WRONG_ANSWER:
        where = report.get("line_text", "")
        details = "Test failed" + (f": {where}" if where else ".") + "\n" + _tail(str(report.get("traceback", "")), 8)
    elif message.startswith("The submission raised"):
        if any(p in message for p in ("File too large", "No space left on device")):  # RLIMIT_FSIZE, the tmpfs
            verdict = Verdict.OUTPUT_LIMIT
        details = message + ("\n" + _tail(submission_ex.stderr, 12) if submission_ex.stderr.strip() else "")
    else:
        details = message + ("\n" + _tail(str(report.get("traceback", "")), 12) if report.get("traceback") else "")
    return Judgement(verdict, details, failed_test=line)


def _failed_test(line: int | None, test_list: list[str], one_text: bool) -> int | None:
    """The 1-based line of the tests text, as the index of the test it lies in (for a
    single text: the 0-based line)."""
    if line is None:
        return None
    rel = line - 1
    if one_text:
        return rel
    end = 0
    for index, test in enumerate(test_list):
        end += test.count("\n") + 1
        if rel < end:
            return index
    return None


def provided_names(reference: str, tests: str | Sequence[str]) -> tuple[str, ...]:
    """The names a task's reference solution defines at its top level that its tests use:
    what a submission provides to the tests even where a builtin has the same name (MBPP
    task 126 tests a function named ``sum``). For data sets without an entry point."""
    texts = [tests] if isinstance(tests, str) else list(tests)
    try:
        with warnings.catch_warnings():  # data set code with invalid escapes in its strings
            warnings.simplefilter("ignore")
            body = ast.parse(_normalise_source(reference)).body
            used = {n.id for t in texts for n in ast.walk(ast.parse(_normalise_source(t))) if isinstance(n, ast.Name)}
    except SyntaxError:
        return ()
    defined = set()
    for node in body:
        if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)):
            defined.add(node.name)
        elif isinstance(node, ast.Assign):
            defined.update(t.id for t in node.targets if isinstance(t, ast.Name))
    return tuple(sorted(defined & used))


# --------------------------------------------------------------------------- #
# many at once
# --------------------------------------------------------------------------- #


@dataclass(frozen=True)
class StdioJob:
    """A :func:`judge_stdio` call, for :func:`judge_many`."""

    code: str
    tests: Sequence[tuple[str, str]]
    limits: Limits = field(default_factory=Limits)
    stop_at_first_failure: bool = True

    def run(self) -> Judgement:
        return judge_stdio(self.code, self.tests, self.limits, self.stop_at_first_failure)


@dataclass(frozen=True)
class AssertJob:
    """A :func:`judge_asserts` call, for :func:`judge_many`."""

    code: str
    tests: str | Sequence[str]
    limits: Limits = field(default_factory=Limits)
    setup: str = ""
    entry_point: str | None = None
    provides: Sequence[str] = ()

    def run(self) -> Judgement:
        return judge_asserts(
            self.code, self.tests, self.limits, setup=self.setup, entry_point=self.entry_point, provides=self.provides
        )


def judge_many(jobs: Iterable[StdioJob | AssertJob], workers: int | None = None) -> list[Judgement]:
    """Judge many programs concurrently; results in the order of ``jobs``.

    A thread pool of ``workers`` (default: the number of cores) suffices: each run is its
    own process tree, the threads only wait on pipes.
    """
    jobs = list(jobs)
    if not jobs:
        return []
    probe.current()  # probe once, before the threads start
    workers = max(1, min(workers or os.cpu_count() or 1, len(jobs)))
    with ThreadPoolExecutor(max_workers=workers, thread_name_prefix="sandbox") as pool:
        return list(pool.map(lambda job: job.run(), jobs))
