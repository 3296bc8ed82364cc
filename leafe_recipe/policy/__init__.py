"""Text generation backends behind one batched call.

`generate(conversations, sampling)` takes every live episode at once (one call per
turn) and returns one `Completion` per conversation: its text, and the generated-token
count and truncation flag that the ledgers record. A conversation is a list of
OpenAI-style chat messages (`leafe_recipe.prompts.Message`); the backend applies the
tokenizer's chat template.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Protocol

from leafe_recipe.prompts import Message


@dataclass(frozen=True)
class Sampling:
    """Explicit sampling settings, so the hf and vllm backends draw from one distribution.

    top_k=0 means no top-k filtering: pinned because transformers applies top_k=50
    when it is unset and vLLM does not. temperature=0 means greedy decoding.
    """

    temperature: float = 1.0
    top_p: float = 1.0
    top_k: int = 0
    max_new_tokens: int = 256
    seed: int = 0
    stop: tuple[str, ...] = ()


@dataclass(frozen=True)
class Completion:
    text: str
    num_tokens: int
    truncated: bool  # hit max_new_tokens before an end of sequence or a stop string


class Policy(Protocol):
    def generate(self, conversations: list[list[Message]], sampling: Sampling | list[Sampling]) -> list[Completion]:
        """One completion per conversation; `sampling` is shared or given per conversation
        (LEAFE's explorer sends actions and reflections, with their own settings, in one call)."""


def per_conversation(sampling: Sampling | list[Sampling], n: int) -> list[Sampling]:
    if isinstance(sampling, Sampling):
        return [sampling] * n
    if len(sampling) != n:
        raise ValueError(f"got {len(sampling)} sampling settings for {n} conversations")
    return list(sampling)


@dataclass
class BackendConfig:
    """The `backend` config group; the keys a backend does not use are ignored by it."""

    name: str = "hf"
    device: str = "auto"
    dtype: str = "auto"
    max_batch_size: int = 64
    attn_implementation: str = "auto"  # leafe_recipe.gpu.choose_attention decides, or a transformers name
    tensor_parallel_size: int = 1
    gpu_memory_utilization: float = 0.85
    max_model_len: int | None = None
    extra: dict[str, Any] = field(default_factory=dict)


def make_policy(path: str, backend: BackendConfig) -> Policy:
    """Build the backend named by `backend.name` for a hub id or a local directory
    (the callers resolve `tiny` and the other built-in model names first)."""
    if backend.name == "hf":
        from leafe_recipe.policy.hf import HFPolicy

        return HFPolicy(
            path,
            device=backend.device,
            dtype=backend.dtype,
            max_batch_size=backend.max_batch_size,
            attn_implementation=backend.attn_implementation,
        )
    if backend.name == "vllm":
        from leafe_recipe.policy.vllm import VLLMPolicy

        return VLLMPolicy(
            path,
            tensor_parallel_size=backend.tensor_parallel_size,
            gpu_memory_utilization=backend.gpu_memory_utilization,
            max_model_len=backend.max_model_len,
            dtype=backend.dtype,
            **backend.extra,
        )
    raise ValueError(f"unknown backend {backend.name!r}: use hf or vllm")


def cut_at_stop(text: str, stop: tuple[str, ...]) -> tuple[str, bool]:
    """Cut `text` before the first stop string (vLLM's convention: the stop string is excluded)."""
    cuts = [i for i in (text.find(s) for s in stop) if i >= 0]
    return (text[: min(cuts)], True) if cuts else (text, False)
