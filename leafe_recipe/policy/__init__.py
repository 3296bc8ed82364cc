"""Text generation backends behind one batched call.

`generate(conversations, sampling)` takes every live episode at once (one call per
turn) and returns one `Completion` per conversation: its text, and the generated-token
count and truncation flag that the ledgers record. A conversation is a list of
OpenAI-style chat messages (`leafe_recipe.prompts.Message`); the backend applies the
tokenizer's chat template.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass, replace
from typing import Protocol

from leafe_recipe.prompts import Message


@dataclass(frozen=True)
class Sampling:
    """Explicit sampling settings, so the hf and vllm backends draw from one distribution.

    top_k=0 means no top-k filtering: pinned because transformers applies top_k=50
    when it is unset and vLLM does not. temperature=0 means greedy decoding. `seed` is the
    request's: a completion depends on its prompt and this seed only, never on the other
    requests of a call or on earlier calls (see `request_seed`).
    """

    temperature: float = 1.0
    top_p: float = 1.0
    top_k: int = 0
    max_new_tokens: int = 256
    seed: int = 0
    stop: tuple[str, ...] = ()

    def for_request(self, *identity: object) -> "Sampling":
        """These settings for one request, seeded by the run's seed and the request's identity."""
        return replace(self, seed=request_seed(self.seed, *identity))


def request_seed(seed: int, *identity: object) -> int:
    """A request's seed from the run's seed and what the request is (task, sample, node, step...):
    every draw of a task follows from the seed and the task itself, so the order tasks run in,
    sharding and a resumed run change nothing."""
    text = json.dumps([seed, *identity], default=str)
    return int.from_bytes(hashlib.sha256(text.encode()).digest()[:8], "big") >> 1


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


def cut_at_stop(text: str, stop: tuple[str, ...]) -> tuple[str, bool]:
    """Cut `text` before the first stop string (vLLM's convention: the stop string is excluded)."""
    cuts = [i for i in (text.find(s) for s in stop) if i >= 0]
    return (text[: min(cuts)], True) if cuts else (text, False)
