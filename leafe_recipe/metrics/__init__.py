"""Metrics for Hugging Face `evaluate`, loadable offline by path.

    import evaluate
    from leafe_recipe.metrics import CODE_EVAL
    code_eval = evaluate.load(CODE_EVAL)  # instead of evaluate.load("code_eval")
"""

from pathlib import Path

CODE_EVAL = str(Path(__file__).with_name("code_eval.py"))
"""`code_eval`'s interface, judged in leafe_recipe.sandbox (see code_eval.py)."""
