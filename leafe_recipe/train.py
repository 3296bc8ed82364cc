"""LEAFE stage 2: distil D_cf and D_reh into the policy with OpenRLHF's own SFT trainer.

`train(cfg)` runs the real `openrlhf.cli.train_sft` in a subprocess, tees its output to
`<output_dir>/train.log`, and returns a Hugging Face checkpoint directory that
`AutoModelForCausalLM.from_pretrained` and `lm_eval --model hf` read directly.

On GPUs the command is OpenRLHF's usual `deepspeed --module openrlhf.cli.train_sft ...`.
Without CUDA it is `python -m leafe_recipe.train ...` with the same flags: this module's
`__main__` removes OpenRLHF 0.11.2's few CUDA assumptions in that one process
(`_patch_for_cpu`) and runs `openrlhf.cli.train_sft` as `__main__`. Either way, the attention
kernel, the flash_attn stand-in and the CUDA architecture list are decided by
`leafe_recipe.gpu` before the launch.
"""

from __future__ import annotations

import hashlib
import importlib
import json
import os
import time
import runpy
import shlex
import socket
import subprocess
import sys
from collections import deque
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any, Callable

from leafe_recipe import tracking
from leafe_recipe.gpu import choose_attention, openrlhf_env
from leafe_recipe.manifest import Manifest, write
from leafe_recipe.models import identity
from leafe_recipe.records import claim, write_json

LOG_NAME = "train.log"
LORA_ADAPTER = "lora_adapter"  # a LoRA run's adapter, under output_dir, before the merge
INPUT_KEY, OUTPUT_KEY = "prompt", "response"  # the SFT JSONL format (leafe_recipe/distill.py)
TAIL_LINES = 40  # how much of the trainer's output a TrainingError carries


@dataclass
class SFTConfig:
    """One SFT run: a method's `sft` block (hydra_conf/method/leafe.yaml holds every value: the
    paper's batch 128, lr 1e-6, 2 epochs) and its data; each field is one train_sft flag."""

    model: str  # --model.model_name_or_path: the base model or a checkpoint (GRPO's for "LEAFE + RL")
    datasets: list[str]  # --data.dataset (JSONL files)
    output_dir: str  # the checkpoint, with train.log beside its files
    learning_rate: float  # --adam.lr
    epochs: int  # --train.max_epochs
    train_batch_size: int  # --train.batch_size (global)
    micro_train_batch_size: int  # --train.micro_batch_size (per device)
    max_len: int  # --data.max_len; OpenRLHF drops samples whose prompt alone reaches it
    zero_stage: int  # --ds.zero_stage
    lora_rank: int  # --ds.lora.rank; 0 = full fine-tune
    lora_alpha: int  # --ds.lora.alpha
    target_modules: list[str] | None  # --ds.lora.target_modules; None = OpenRLHF's "all-linear"
    gradient_checkpointing: bool  # --model.gradient_checkpointing_enable
    seed: int  # --train.seed
    bf16: bool  # --ds.param_dtype bf16, else fp16: OpenRLHF 0.11.2 has no fp32 mode
    attn_implementation: str | None  # --ds.attn_implementation; None = leafe_recipe.gpu.choose_attention's
    max_samples: int | None  # --data.max_samples (per file, then in total); None = OpenRLHF's 1e6
    extra_args: list[str]  # more train_sft flags, appended verbatim
    dataset_probs: list[float] | None = None  # --data.dataset_probs (the method's mixture); None concatenates the files

    def __post_init__(self) -> None:
        if self.dataset_probs is not None and len(self.dataset_probs) != len(self.datasets):
            raise ValueError(f"{len(self.datasets)} datasets but {len(self.dataset_probs)} probabilities")


class TrainingDataError(ValueError):
    """The data cannot fill the batch the trainer is asked for; said before the trainer starts."""


class TrainingError(RuntimeError):
    """A failed trainer run: the exact command line and the trainer's own last words."""

    def __init__(self, command: list[str], returncode: int, log: Path, tail: str):
        self.command, self.returncode, self.log = command, returncode, log
        super().__init__(
            f"{shlex.join(command)}\nexited with status {returncode}; its last output "
            f"(the whole of it is in {log}):\n{tail}"
        )


def leafe_mixture(d_cf: str | Path, d_reh: str | Path, beta: float) -> tuple[list[str], list[float] | None]:
    """`datasets` and `dataset_probs` for the paper's loss L = L_cf + beta * L_reh.

    OpenRLHF draws each example from file i with probability p_i (`datasets.interleave_datasets`),
    so the expected loss is p_cf L_cf + p_reh L_reh. p_cf = 1/(1+beta), p_reh = beta/(1+beta)
    gives (L_cf + beta L_reh) / (1 + beta): the paper's loss up to a constant that the learning
    rate absorbs. An epoch lasts until every file has been drawn whole ("all_exhausted"), so the
    file with fewer examples than its share repeats. A file with nothing to draw is left out:
    beta = 0, or an empty file (no branch succeeded), which `datasets` cannot load.
    """
    if beta < 0:
        raise ValueError(f"beta must be >= 0, got {beta}")
    candidates = [(str(d_cf), 1.0), (str(d_reh), beta)]
    weighted = [(path, w) for path, w in candidates if w > 0 and Path(path).stat().st_size > 0]
    if not weighted:
        raise ValueError(f"nothing to train on: {d_cf} and {d_reh} are empty (or beta = 0 and {d_cf} is)")
    if len(weighted) == 1:
        return [weighted[0][0]], None
    return [path for path, _ in weighted], [w / (1 + beta) for _, w in weighted]


def trainer_output_dir(cfg: SFTConfig) -> Path:
    """Where train_sft saves: the checkpoint itself, or a LoRA adapter that is merged into output_dir."""
    return Path(cfg.output_dir) / LORA_ADAPTER if cfg.lora_rank > 0 else Path(cfg.output_dir)


def sft_flags(cfg: SFTConfig, on_gpu: bool) -> list[str]:
    """`openrlhf.cli.train_sft` flags (0.11.2's dotted names), one per config field."""
    flags = [
        "--model.model_name_or_path", cfg.model,
        "--data.dataset", ",".join(str(d) for d in cfg.datasets),
        "--data.input_key", INPUT_KEY,
        "--data.output_key", OUTPUT_KEY,
        "--data.apply_chat_template",  # the loss covers the response tokens only
        "--data.max_len", str(cfg.max_len),
        "--adam.lr", str(cfg.learning_rate),
        "--train.max_epochs", str(cfg.epochs),
        "--train.batch_size", str(cfg.train_batch_size),
        "--train.micro_batch_size", str(cfg.micro_train_batch_size),
        "--train.seed", str(cfg.seed),
        "--ds.zero_stage", str(cfg.zero_stage),
        "--ds.param_dtype", "bf16" if cfg.bf16 else "fp16",
        "--ds.attn_implementation", choose_attention(cfg.attn_implementation, on_gpu, "bf16" if cfg.bf16 else "fp16", "OpenRLHF SFT"),
        "--ckpt.output_dir", str(trainer_output_dir(cfg)),
    ]  # fmt: skip
    if cfg.dataset_probs is not None:
        flags += ["--data.dataset_probs", ",".join(str(p) for p in cfg.dataset_probs)]
    if cfg.max_samples is not None:
        flags += ["--data.max_samples", str(cfg.max_samples)]
    if cfg.gradient_checkpointing:
        flags.append("--model.gradient_checkpointing_enable")
    if cfg.lora_rank > 0:
        flags += ["--ds.lora.rank", str(cfg.lora_rank), "--ds.lora.alpha", str(cfg.lora_alpha)]
        if cfg.target_modules:
            flags += ["--ds.lora.target_modules", *cfg.target_modules]
    return flags + tracking.openrlhf_flags(f"sft-{Path(cfg.output_dir).name}") + list(cfg.extra_args)


def sft_command(cfg: SFTConfig, num_gpus: int) -> list[str]:
    """OpenRLHF's DeepSpeed launch on `num_gpus` GPUs; with none, this module's one-process CPU launcher."""
    if num_gpus > 0:
        deepspeed = str(Path(sys.executable).with_name("deepspeed"))  # this environment's launcher, not PATH's
        launcher = [deepspeed, "--num_gpus", str(num_gpus), "--module", "openrlhf.cli.train_sft"]
    else:
        launcher = [sys.executable, "-m", "leafe_recipe.train"]
    return launcher + sft_flags(cfg, on_gpu=num_gpus > 0)


def merge_command(cfg: SFTConfig) -> list[str]:
    """OpenRLHF's own LoRA merge: base model + adapter -> one checkpoint in output_dir."""
    return [
        sys.executable, "-m", "openrlhf.cli.lora_combiner",
        "--model_path", cfg.model,
        "--lora_path", str(trainer_output_dir(cfg)),
        "--output_path", str(cfg.output_dir),
        "--ds.param_dtype", "bf16" if cfg.bf16 else "fp16",
    ]  # fmt: skip


def _fits(path: str, tokenizer, max_len: int) -> list[bool]:
    """Per record of an SFT file: does OpenRLHF's SFTDataset keep it? It drops a record whose
    prompt, chat-templated, is max_len - 2 tokens or longer, or whose prompt or response is empty."""
    kept = []
    for line in open(path, encoding="utf-8"):
        if not line.strip():
            continue
        record = json.loads(line)
        prompt = tokenizer.apply_chat_template(record[INPUT_KEY], tokenize=False, add_generation_prompt=True)
        full = tokenizer.apply_chat_template(record[INPUT_KEY] + record[OUTPUT_KEY], tokenize=False)
        n = len(tokenizer(prompt, add_special_tokens=False)["input_ids"])
        kept.append(bool(prompt) and len(full) > len(prompt) and n < max_len - 2)
    return kept


def data_per_epoch(cfg: SFTConfig) -> tuple[int, int]:
    """(examples drawn per epoch, of which OpenRLHF keeps): the files' concatenation, or with
    `dataset_probs` the same seeded `datasets.interleave_datasets` ("all_exhausted") that its
    `blending_datasets` runs, capped by `max_samples`; then its SFTDataset's length filter."""
    from transformers import AutoTokenizer

    try:
        tokenizer = AutoTokenizer.from_pretrained(cfg.model)
    except OSError as err:
        raise TrainingDataError(f"cannot load the tokenizer of {cfg.model} to check the training data against the batch: {err}") from err
    cap = int(cfg.max_samples if cfg.max_samples is not None else 1_000_000)  # train_sft's default
    kept = [_fits(path, tokenizer, cfg.max_len)[:cap] for path in cfg.datasets]
    if cfg.dataset_probs is None:
        rows = [(i, j) for i, file in enumerate(kept) for j in range(len(file))]
    else:
        from datasets import Dataset, interleave_datasets

        parts = [Dataset.from_dict({"f": [i] * len(file), "j": list(range(len(file)))}) for i, file in enumerate(kept)]
        mixed = interleave_datasets(parts, probabilities=cfg.dataset_probs, seed=cfg.seed, stopping_strategy="all_exhausted")
        rows = list(zip(mixed["f"], mixed["j"]))
    rows = rows[:cap]
    return len(rows), sum(kept[i][j] for i, j in rows)


def check_batch(cfg: SFTConfig, world_size: int) -> int:
    """Stop before launching the trainer when the data cannot fill one batch (OpenRLHF would
    stop later with "Training must contain at least one complete gradient-accumulation
    window"); return the examples per epoch."""
    drawn, n = data_per_epoch(cfg)
    per_step = cfg.micro_train_batch_size * world_size
    if cfg.train_batch_size % per_step:
        raise TrainingDataError(
            f"the batch size {cfg.train_batch_size} (method.sft.train_batch_size) is not a multiple of the micro batch "
            f"{cfg.micro_train_batch_size} (method.sft.micro_train_batch_size) times the {world_size} training processes"
        )
    if n < cfg.train_batch_size:
        long = f", {drawn - n} of {drawn} of them dropped as longer than method.sft.max_len={cfg.max_len} tokens" if drawn > n else ""
        raise TrainingDataError(
            f"{n} training examples per epoch ({', '.join(str(d) for d in cfg.datasets)}{long}) cannot fill one batch "
            f"of {cfg.train_batch_size} (method.sft.train_batch_size). Lower method.sft.train_batch_size to at most "
            f"{max(n, 1)} (and method.sft.micro_train_batch_size to a divisor of it)"
            + (", raise method.sft.max_len" if drawn > n else "")
            + ", or make more data (more train tasks: env.n_train; a larger budget). Rerun in the same folder "
            "(hydra.run.dir=...) to keep the data made so far."
        )
    return n


def train(cfg: SFTConfig, num_gpus: int | None = None, check: bool = True) -> Path:
    """Run the SFT (and, for LoRA, the merge); return the checkpoint directory, `cfg.output_dir`.

    `num_gpus` defaults to every visible CUDA device (none: the CPU launcher). The data
    is checked against the batch first (`check_batch`) unless `check` is false.
    """
    if num_gpus is None:
        num_gpus = _visible_gpus()
    if check:
        check_batch(cfg, max(1, num_gpus))
    out = Path(cfg.output_dir)
    out.mkdir(parents=True, exist_ok=True)
    log = out / LOG_NAME
    log.write_text("")
    command, env = sft_command(cfg, num_gpus), openrlhf_env(on_gpu=num_gpus > 0)
    run_logged(command, log, env)
    if cfg.lora_rank > 0:
        run_logged(merge_command(cfg), log, env)
    return out


COMPLETE = ".complete.json"  # inside a checkpoint: its training finished (holds the key it was trained with)
NEW_FOLDER = "Use a new run folder (drop hydra.run.dir), or delete that output to make it again."


def gradient_steps(cfg: SFTConfig, examples: int, world_size: int) -> int:
    """Optimizer steps OpenRLHF's train_sft takes (cli/train_sft.py: micro batches per rank, the
    last incomplete one dropped, over the gradient-accumulation window, times the epochs)."""
    accumulation = max(1, cfg.train_batch_size // (cfg.micro_train_batch_size * world_size))
    return (examples // world_size // cfg.micro_train_batch_size) * cfg.epochs // accumulation


def sft_defaults() -> dict[str, Any]:
    """The SFT settings every method starts from: method=leafe's `sft` block (the paper's), as written there."""
    from omegaconf import OmegaConf

    from leafe_recipe import CONF_DIR

    return OmegaConf.to_container(OmegaConf.load(CONF_DIR / "method" / "leafe.yaml").sft)


def train_checkpoint(cfg: SFTConfig, prompt: dict[str, Any], manifest: Callable[[dict[str, Any]], Manifest], **key_extra: Any) -> tuple[Path, dict[str, int]]:
    """Train `cfg.output_dir` once, keyed by what it is trained from (the start model, the data by
    content, every SFT setting, the prompt protocol, and `key_extra`): a rerun reuses a finished
    checkpoint made with the same key and stops (records.StageMismatch) for another. The
    checkpoint gets its manifest (`manifest(key)`: what it learned from and its prompt protocol).
    Returns the checkpoint and its budget: training examples per epoch, epochs, gradient steps."""
    checkpoint = Path(cfg.output_dir)
    settings = {k: v for k, v in asdict(cfg).items() if k not in ("model", "datasets", "dataset_probs", "output_dir")}
    key = {
        "stage": "train",
        "init": identity(cfg.model),
        "data": {Path(d).name: hashlib.sha256(Path(d).read_bytes()).hexdigest()[:16] for d in cfg.datasets},
        "dataset_probs": cfg.dataset_probs,
        "sft": settings,
        "prompt": prompt,
        **key_extra,
    }
    claim(checkpoint, key, NEW_FOLDER)
    if (checkpoint / COMPLETE).exists():
        print(f"[train] {checkpoint} already trained", flush=True)
        return checkpoint, json.loads((checkpoint / COMPLETE).read_text())["budget"]
    start = time.monotonic()
    world = max(1, _visible_gpus())
    n = check_batch(cfg, world)
    train(cfg, check=False)
    budget = {"train_examples": n, "epochs": cfg.epochs, "gradient_steps": gradient_steps(cfg, n, world)}
    write(checkpoint, manifest(key))
    write_json(checkpoint / COMPLETE, {**key, "budget": budget})
    print(f"[train] {n} examples x {cfg.epochs} epochs, {budget['gradient_steps']} gradient steps -> {checkpoint} "
          f"({time.monotonic() - start:.0f} s; log: {checkpoint / LOG_NAME})", flush=True)  # fmt: skip
    return checkpoint, budget


def _visible_gpus() -> int:
    import torch

    return torch.cuda.device_count()


def run_logged(command: list[str], log: Path, env: dict[str, str] | None = None) -> None:
    """Run `command` with `env` added to the environment, teeing its output to `log` and the
    console; a failure raises TrainingError."""
    tail: deque[str] = deque(maxlen=TAIL_LINES)
    with open(log, "a", encoding="utf-8", buffering=1) as f:
        f.write(f"$ {shlex.join(command)}\n")
        for key, value in (env or {}).items():
            f.write(f"$ export {key}={shlex.quote(value)}\n")
        env = {**os.environ, **(env or {}), "PYTHONUNBUFFERED": "1"}  # unbuffered: stdout and stderr in order
        with subprocess.Popen(
            command, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, errors="replace", env=env
        ) as proc:
            for line in proc.stdout:
                f.write(line)
                sys.stdout.write(line)
                tail.append(line)
    if proc.returncode != 0:
        raise TrainingError(command, proc.returncode, log, "".join(tail))


def _patch_for_cpu() -> None:
    """Let OpenRLHF 0.11.2's DeepSpeed SFT run as one CPU process; affects this process only.

    Each step was needed on torch 2.13.0 (CPU build) with deepspeed 0.19.6; the failure it
    prevents is named beside it. `import openrlhf.models` needs flash_attn: the launch puts the
    stand-in on PYTHONPATH (leafe_recipe.gpu.openrlhf_env), as on a GPU without flash-attn.
    Upstream OpenRLHF#1301 (torch.accelerator instead of torch.cuda) would retire step 2.
    """
    # 1. One-process rendezvous. Unless RANK, WORLD_SIZE, MASTER_ADDR, MASTER_PORT and LOCAL_RANK
    #    are all set, deepspeed.init_distributed tries MPI discovery ("No module named 'mpi4py'").
    #    LOCAL_RANK=-1 keeps setup_distributed from calling torch.cuda.set_device. DeepSpeed then
    #    picks its CPU accelerator and the gloo backend; hiding GPUs makes it do so on a GPU
    #    machine too (num_gpus=0 there).
    os.environ.update(
        LOCAL_RANK="-1", RANK="0", WORLD_SIZE="1", MASTER_ADDR="127.0.0.1", MASTER_PORT=str(_free_port()),
        CUDA_VISIBLE_DEVICES="",
    )  # fmt: skip
    import torch

    # 2. "AssertionError: Torch not compiled with CUDA enabled" from DeepspeedStrategy.all_reduce,
    #    which moves the logged loss to torch.cuda.current_device() at every step, and from
    #    save_model's torch_dist_barrier_and_cuda_sync() -> torch.cuda.synchronize().
    torch.cuda.current_device = lambda: torch.device("cpu")
    torch.cuda.synchronize = lambda device=None: None
    # 3. No JIT-compiled C++ ops, which would take minutes on a fresh machine (and need a compiler):
    #    DeepSpeed's CPU accelerator builds a shared-memory all-reduce op when it sets up comms
    #    (useless for one process), and OpenRLHF's AdamW config makes DeepSpeed build its CPU
    #    FusedAdam. DeepSpeed's own `torch_adam` optimizer option
    #    selects torch.optim.AdamW instead: the same update.
    import openrlhf.utils.deepspeed.deepspeed as strategy_module

    # (not `deepspeed.comm.torch.x = ...`: that attribute of deepspeed.comm is the torch package)
    importlib.import_module("deepspeed.comm.torch").build_shm_op = lambda: None
    get_train_ds_config = strategy_module.get_train_ds_config

    def with_torch_adam(*args: object, **kwargs: object) -> dict:
        config = get_train_ds_config(*args, **kwargs)
        if config.get("optimizer", {}).get("type") == "AdamW":
            config["optimizer"]["params"]["torch_adam"] = True
        return config

    strategy_module.get_train_ds_config = with_torch_adam


def _free_port() -> int:
    """A free local TCP port, so that concurrent CPU runs do not collide in the gloo rendezvous."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


if __name__ == "__main__":
    # The CPU launcher that sft_command builds when there is no GPU: argv holds train_sft's flags.
    _patch_for_cpu()
    runpy.run_module("openrlhf.cli.train_sft", run_name="__main__", alter_sys=True)
