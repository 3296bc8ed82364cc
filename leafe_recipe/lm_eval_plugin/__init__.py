"""lm-eval integration: the functions behind the `tasks/` folders (tasks.py: documents and
task specs; metrics.py: the filter, metrics and aggregations), the `leafe-agent` model
(agent.py), `evaluate_checkpoint` (the pipeline's evaluate stage) and the `leafe-eval` command
(cli.py).

Importing this package registers the lm-eval model `leafe-agent`. Every task folder's
utils.py imports it, so lm-eval registers the model whenever it resolves a leafe task's
functions (a task named by its YAML path on the `lm_eval` command line, for instance).

Tasks (see tasks/README.md). Every leafe task builds its documents with
:func:`leafe_dataset` from a registered environment family and its task loader (the same
loaders the `leafe` app uses, so the hub default and the local-file override are one code
path). One document per problem holds the Task as JSON and the episode settings; the task
asks for `repeats: n` samples per problem and keeps all of them (lm-eval's default filter
keeps only the first): its filter :func:`play_completions` maps each sample to an episode
record (a single-turn completion from `--model hf|vllm` is played in the environment, which
judges it in the sandbox; an episode from `leafe-agent` already is one)
and reports, per problem (:func:`process_results`), Pass@k for k = 1, 2, 4, ..., n from
`leafe_recipe.passk`, `correct` (the per-sample 0/1 list: `--log_samples` writes it, and
`leafe-compare` and Pass@k recomputations read it), `mean_turns` and
`invalid_action_rate` (pooled over environment steps, like `leafe_recipe.report`).

The `leafe-agent` model runs the episodes of interactive tasks (and of single-turn ones,
as one-turn episodes) with `leafe_recipe.rollout.run_episodes`: one batched generate call
per turn for every live episode. It generates with the project's own policy backends
(`leafe_recipe.policy`: transformers or vLLM) rather than lm-eval's `hf`/`vllm` wrappers:
those are the same transformers/vLLM calls, but the rollout needs completions as chat
messages in and token counts and truncation flags out, per-request vLLM seeds (n identical
prompts get different samples, a rerun repeats them), and exactly the prompts and
sampling of the `leafe` app, whose rollouts LEAFE trains on.
"""

from leafe_recipe.lm_eval_plugin.agent import LeafeAgent, sampling_from_gen_kwargs
from leafe_recipe.lm_eval_plugin.cli import cli, evaluate_checkpoint, hf_attention, summarize_results
from leafe_recipe.lm_eval_plugin.metrics import play_completions, pooled_rate, process_results, success_rate
from leafe_recipe.lm_eval_plugin.tasks import AGENT_ONLY_KEY, EPISODE_KEY, LeafeEvalError, LeafeTask, leafe_dataset, task_spec

__all__ = [
    "AGENT_ONLY_KEY", "EPISODE_KEY", "LeafeAgent", "LeafeEvalError", "LeafeTask", "cli", "evaluate_checkpoint", "hf_attention",
    "leafe_dataset", "play_completions", "pooled_rate", "process_results", "sampling_from_gen_kwargs", "success_rate",
    "summarize_results", "task_spec",
]  # fmt: skip
