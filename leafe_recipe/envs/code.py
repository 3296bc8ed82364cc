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

The tasks, their data schema, loaders and content identity: leafe_recipe/envs/code_data.py.
"""
from __future__ import annotations


import ast
import logging
import math
import re
import warnings
from collections.abc import Sequence
from typing import Any

from leafe_recipe.envs.base import EnvFamily, Step, Task, register
from leafe_recipe.envs.code_data import DatasetUnavailable, code_fingerprint, codecontests_tasks, humaneval_tasks, mbpp_tasks, statement
from leafe_recipe.sandbox import Judgement, Limits, StdioJob, Verdict, judge_asserts, judge_many, judge_stdio

log = logging.getLogger(__name__)

__all__ = ["CodeEnv", "DatasetUnavailable", "expert_action", "extract_code"]


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
        max_turns: int,
        timeout_s: float,
        memory_mb: int,
        max_hidden_tests: int | None,
        judge_workers: int,
        feedback_chars: int,
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


_CODE = dict(runs_code=True, expert=_expert, fingerprint=code_fingerprint, near_text=statement)
register("codecontests", EnvFamily(CodeEnv, codecontests_tasks, CODECONTESTS_SYSTEM_PROMPT, **_CODE))
register("mbpp", EnvFamily(CodeEnv, mbpp_tasks, MBPP_SYSTEM_PROMPT, **_CODE))
register("humaneval", EnvFamily(CodeEnv, humaneval_tasks, HUMANEVAL_SYSTEM_PROMPT, splits=("test",), **_CODE))  # an evaluation set
