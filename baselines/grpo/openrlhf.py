"""GRPO on GPUs: OpenRLHF 0.11.2's Ray trainer (`openrlhf.cli.train_ppo_ray`) with this
project's multi-turn agent.

The command is built from the installed OpenRLHF's own argument parser: `parser()` reads it
out of `openrlhf/cli/train_ppo_ray.py` (the module builds it under `if __name__ ==
"__main__"` and imports vLLM at the top, which a CPU machine lacks, so its parser-building
statements are executed on their own), and `command()` checks every flag it emits against
it. Several flags of OpenRLHF's example scripts no longer exist in 0.11.2
(`--pretrain`, `--advantage_estimator`, `--n_samples_per_prompt`, ...): this file speaks the
dotted ones of the installed version.

The run directory gets the prompt data (`prompts.jsonl`: the first prompt of every train
task, with the task as the label the agent plays), the agent file and its settings, and
`command.sh`. The launch is `python -m openrlhf.cli.train_ppo_ray ...` on this node (Ray
starts a local cluster); for a Ray cluster, `ray job submit --address <head> -- <the same
command>` (`method.dry_run=true` writes everything and prints both, without running).
The attention kernel and, where flash_attn does not import, the stand-in on PYTHONPATH are
leafe_recipe.gpu's choice, as for the SFT launch: command.sh exports it, and the Ray
command passes it as the job's runtime environment.
"""

from __future__ import annotations

import argparse
import ast
import datetime
import importlib.util
import json
import shlex
import sys
from pathlib import Path
from typing import Any

from baselines.grpo.agent import agent_file
from leafe_recipe import tracking
from leafe_recipe.envs.base import Task
from leafe_recipe.gpu import choose_attention, openrlhf_env
from leafe_recipe.prompts import build_messages
from leafe_recipe.records import write_jsonl
from leafe_recipe.train import run_logged


def parser() -> argparse.ArgumentParser:
    """The argument parser of the installed `openrlhf.cli.train_ppo_ray`, without importing it."""
    spec = importlib.util.find_spec("openrlhf")
    if spec is None or spec.origin is None:
        raise RuntimeError("openrlhf is not installed: `pip install --no-deps openrlhf==0.11.2` (see the Makefile)")
    path = Path(spec.origin).parent / "cli" / "train_ppo_ray.py"
    tree = ast.parse(path.read_text(), str(path))
    main = next(n for n in tree.body if isinstance(n, ast.If) and "__main__" in ast.unparse(n.test))
    statements = []
    for statement in main.body:
        if "parse_args" in ast.unparse(statement):
            break
        statements.append(statement)
    namespace: dict[str, Any] = {"argparse": argparse, "datetime": datetime.datetime}
    exec(compile(ast.Module(body=statements, type_ignores=[]), str(path), "exec"), namespace)
    return namespace["parser"]


def prompt_records(system: str, tasks_and_first: list[tuple[Task, str]]) -> list[dict[str, Any]]:
    """The prompt dataset: the first prompt of each task (chat messages) and the task as the label."""
    return [
        {"prompt": build_messages(system, [first], [], None), "label": json.dumps(task.to_json(), sort_keys=True)}
        for task, first in tasks_and_first
    ]


def command(g: dict[str, Any], init: str, folder: Path, num_gpus: int, max_new_tokens: int) -> list[str]:
    """`python -m openrlhf.cli.train_ppo_ray` with the flags of method.grpo (`g`), each checked
    by OpenRLHF 0.11.2's own parser."""
    o = g["openrlhf"]
    flags = [
        "--actor.model_name_or_path", init,
        "--data.prompt_dataset", str(folder / "prompts.jsonl"),
        "--data.input_key", "prompt",
        "--data.label_key", "label",
        "--data.apply_chat_template",
        "--data.max_len", str(g["max_length"]),
        "--train.agent_func_path", str(folder / "agent.py"),
        "--algo.advantage.estimator", "group_norm",
        "--rollout.n_samples_per_prompt", str(g["group_size"]),
        "--algo.kl.use_loss",
        "--algo.kl.estimator", "k3",
        "--algo.kl.init_coef", str(g["kl_coef"]),
        "--actor.adam.lr", str(g["learning_rate"]),
        "--rollout.temperature", str(g["temperature"]),
        "--rollout.top_p", "1.0",
        "--rollout.max_new_tokens", str(max_new_tokens),
        "--rollout.batch_size", str(g["prompts_per_step"]),
        "--rollout.micro_batch_size", str(o["micro_batch_size"]),
        "--train.batch_size", str(g["prompts_per_step"] * g["group_size"]),
        "--train.micro_batch_size", str(o["micro_batch_size"]),
        "--train.num_episodes", str(g["passes"]),
        "--train.seed", str(g["seed"]),
        "--train.colocate_all",
        "--vllm.enable_sleep",
        "--ds.enable_sleep",
        "--vllm.num_engines", str(o["vllm_engines"] or num_gpus),
        "--vllm.tensor_parallel_size", str(o["tensor_parallel_size"]),
        "--vllm.gpu_memory_utilization", str(o["gpu_memory_utilization"]),
        "--actor.num_nodes", str(o["num_nodes"]),
        "--actor.num_gpus_per_node", str(num_gpus),
        "--ref.num_nodes", str(o["num_nodes"]),
        "--ref.num_gpus_per_node", str(num_gpus),
        "--ds.zero_stage", str(o["zero_stage"]),
        "--ds.param_dtype", "bf16",
        "--ds.attn_implementation", choose_attention(None, True, "bf16", "OpenRLHF GRPO"),
        "--actor.gradient_checkpointing_enable",
        "--ckpt.output_dir", str(folder / "checkpoint"),
        "--ckpt.path", str(folder / "ds_checkpoints"),
    ]  # fmt: skip
    flags += tracking.openrlhf_flags("grpo") + list(o["extra_args"])
    try:
        parser().parse_args(flags)
    except SystemExit as err:  # argparse reports on stderr and exits
        raise ValueError(f"OpenRLHF 0.11.2's train_ppo_ray rejects these flags (see above): {shlex.join(flags)}") from err
    return [sys.executable, "-m", "openrlhf.cli.train_ppo_ray", *flags]


def prepare(g: dict[str, Any], init: str, folder: Path, settings: dict[str, Any], system: str, starts, num_gpus: int) -> list[str]:
    """Write the prompt data, the agent file, its settings and command.sh; return the command."""
    folder.mkdir(parents=True, exist_ok=True)
    write_jsonl(folder / "prompts.jsonl", prompt_records(system, starts))
    (folder / "agent_settings.json").write_text(json.dumps(settings, indent=2))
    (folder / "agent.py").write_text(agent_file(folder / "agent_settings.json"))
    cmd = command(g, init, folder, num_gpus, settings["max_new_tokens"])
    env = openrlhf_env(on_gpu=True)
    exports = "".join(f"export {k}={shlex.quote(v)}\n" for k, v in env.items())
    runtime = ["--runtime-env-json", json.dumps({"env_vars": env})] if env else []
    (folder / "command.sh").write_text("#!/usr/bin/env bash\n# this node:\n" + exports + shlex.join(cmd) + "\n# a Ray cluster:\n"
                                       + "ray job submit --address http://<head>:8265 " + shlex.join([*runtime, "--", "python3", *cmd[1:]]) + "\n")  # fmt: skip
    return cmd


def launch(cmd: list[str], folder: Path) -> Path:
    """Run the trainer (its output teed to checkpoint/train.log; a failure raises TrainingError
    with the command and OpenRLHF's last words); return the HF checkpoint."""
    checkpoint = folder / "checkpoint"
    checkpoint.mkdir(parents=True, exist_ok=True)
    (checkpoint / "train.log").write_text("")
    run_logged(cmd, checkpoint / "train.log", openrlhf_env(on_gpu=True))
    return checkpoint
