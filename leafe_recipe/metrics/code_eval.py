"""Pass@k of generated code, judged in leafe-recipe's sandbox: a drop-in for `code_eval`.

Hugging Face's `code_eval` runs each candidate with its tests by `exec` in a fork of the
caller's own process (after disabling a few functions), and is downloaded from the Hub.
This metric takes the same inputs and returns the same two results, but judges every
candidate with :func:`leafe_recipe.sandbox.judge_asserts`: the candidate in its own
sandboxed process, the tests in another, so that no candidate can read the machine's files,
reach the network, or talk its way past its tests (leafe_recipe.sandbox states the
guarantees). Pass@k is the unbiased estimator of leafe_recipe.passk. It is loaded by path,
so it works offline::

    import evaluate
    from leafe_recipe.metrics import CODE_EVAL

    code_eval = evaluate.load(CODE_EVAL)  # was: evaluate.load("code_eval")
    pass_at_k, results = code_eval.compute(references=tests, predictions=candidates, k=[1, 10])

No HF_ALLOW_CODE_EVAL is needed. Two optional inputs, per problem, that `code_eval` does not
have: ``setups``, the task's own code (HumanEval's prompt), run in the tests' process so that
the tests use the prompt's helpers rather than a candidate's; and ``provides``, the names the
tests take from the candidate even where the setup or a builtin defines the same name. With
HumanEval, pass ``setups=[prompt]`` and ``provides=[[entry_point]]`` (the prompt defines the
entry point as a stub); with MBPP task 126, ``provides=[["sum"]]`` (its function is named
``sum``). Without ``setups`` the prompt's helpers come from the candidate, as in `code_eval`.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Sequence

import datasets
import evaluate

from leafe_recipe.passk import pass_at_k
from leafe_recipe.sandbox import AssertJob, Limits, Verdict, judge_many

_DESCRIPTION = "Pass@k of code candidates on assert tests, each judged in leafe-recipe's sandbox."
_CITATION = """\
@misc{chen2021evaluating,
  title={Evaluating Large Language Models Trained on Code},
  author={Mark Chen and others},
  year={2021}, eprint={2107.03374}, archivePrefix={arXiv}, primaryClass={cs.LG}
}
"""
_INPUTS = """
Args:
    predictions: for each problem, a list of candidate programs (strings).
    references: for each problem, its test code (asserts, or HumanEval's `check` and its call).
    k: the k of Pass@k (default [1, 10, 100]); a k larger than some problem's number of
        candidates is left out, as in `code_eval`.
    num_workers: candidates judged at once (default 4).
    timeout: CPU seconds per candidate (default 3.0); the wall-clock limit is one second more.
    setups: optional, for each problem the task's code run before its tests (its prompt).
    provides: optional, for each problem the names the tests take from the candidate even
        where the setup or a builtin defines the same name (HumanEval: the entry point).
Returns:
    pass_at_k: {"pass@k": mean over problems of the unbiased estimate}.
    results: {problem index: [(completion index, {"task_id", "completion_id", "passed",
        "result"}), ...]}, "result" being "passed", "timed out" or "failed: <details>".
Examples:
    >>> code_eval = evaluate.load(CODE_EVAL)
    >>> pass_at_k, _ = code_eval.compute(references=["assert add(2, 3) == 5"],
    ...     predictions=[["def add(a, b): return a * b", "def add(a, b): return a + b"]], k=[1, 2])
    >>> pass_at_k
    {'pass@1': 0.5, 'pass@2': 1.0}
"""


class CodeEval(evaluate.Metric):
    def _info(self) -> evaluate.MetricInfo:
        return evaluate.MetricInfo(
            description=_DESCRIPTION,
            citation=_CITATION,
            inputs_description=_INPUTS,
            features=datasets.Features(
                {"predictions": datasets.Sequence(datasets.Value("string")), "references": datasets.Value("string")}
            ),
            homepage="https://github.com/openai/human-eval",
        )

    def _compute(
        self,
        predictions: Sequence[Sequence[str]],
        references: Sequence[str],
        k: int | Sequence[int] = (1, 10, 100),
        num_workers: int = 4,
        timeout: float = 3.0,
        setups: Sequence[str] | None = None,
        provides: Sequence[Sequence[str]] | None = None,
    ) -> tuple[dict[str, float], dict[int, list]]:
        limits = Limits(cpu_s=timeout, wall_s=timeout + 1.0)
        owners, jobs = [], []
        for task, (candidates, tests) in enumerate(zip(predictions, references)):
            for completion, candidate in enumerate(candidates):
                setup = setups[task] if setups else ""
                names = tuple(provides[task]) if provides else ()
                jobs.append(AssertJob(candidate, tests, limits, setup=setup, provides=names))
                owners.append((task, completion))
        results: dict[int, list] = defaultdict(list)
        for (task, completion), judgement in zip(owners, judge_many(jobs, workers=num_workers)):
            results[task].append((completion, {"task_id": task, "completion_id": completion,
                                               "passed": judgement.passed, "result": _result(judgement)}))  # fmt: skip
        tasks = sorted(results)
        n = [len(results[t]) for t in tasks]
        c = [sum(r["passed"] for _, r in results[t]) for t in tasks]
        ks = [k] if isinstance(k, int) else [int(x) for x in k]
        usable = [x for x in ks if n and min(n) >= x]
        table = pass_at_k(n, c, usable) if usable else None
        return {f"pass@{x}": float(table[:, j].mean()) for j, x in enumerate(usable)}, dict(results)


def _result(judgement) -> str:
    if judgement.passed:
        return "passed"
    if judgement.verdict is Verdict.TIMEOUT:
        return "timed out"
    first = judgement.details.strip().splitlines()[0] if judgement.details.strip() else str(judgement.verdict)
    return f"failed: {first}"
