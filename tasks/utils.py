"""The functions and the task class of every leafe task (tasks/README.md). They live in
leafe_recipe.lm_eval_plugin; importing it also registers the lm-eval model `leafe-agent`."""

from leafe_recipe.lm_eval_plugin import (  # noqa: F401
    LeafeTask,
    leafe_dataset,
    play_completions,
    pooled_rate,
    process_results,
    success_rate,
)
