"""The vLLM backend: GPU generation with tensor parallelism and continuous batching."""

from __future__ import annotations

from typing import Any

from leafe_recipe import Unavailable
from leafe_recipe.policy import Completion, Sampling, per_conversation
from leafe_recipe.prompts import Message

GPU_HINT = (
    "backend=vllm needs vLLM and a CUDA GPU. On a GPU machine run `pip install -e .[gpu]` "
    "(see docs/gpu.md, 'Install'); on this machine use backend=hf."
)


class VLLMPolicy:
    def __init__(
        self,
        path: str,
        tensor_parallel_size: int = 1,
        gpu_memory_utilization: float = 0.85,
        max_model_len: int | None = None,
        dtype: str = "auto",
        **engine_kwargs: Any,
    ):
        try:
            import torch
            import vllm
        except ImportError as err:
            raise Unavailable(f"{GPU_HINT} (import failed: {err})") from None
        if not torch.cuda.is_available():
            raise Unavailable(f"{GPU_HINT} (torch sees no CUDA device)")
        self.vllm = vllm
        self.llm = vllm.LLM(
            model=path,
            tensor_parallel_size=tensor_parallel_size,
            gpu_memory_utilization=gpu_memory_utilization,
            max_model_len=max_model_len,
            dtype=dtype,
            **engine_kwargs,
        )

    def generate(self, conversations: list[list[Message]], sampling: Sampling | list[Sampling]) -> list[Completion]:
        """Every request is seeded with its own `Sampling.seed` (the callers key it by task, sample
        and step: `Sampling.for_request`), so the n identical prompts of a task get different
        samples and a rerun, in any order, repeats them."""
        params = [
            self.vllm.SamplingParams(
                n=1,
                temperature=s.temperature,
                top_p=s.top_p,
                top_k=s.top_k if s.top_k > 0 else -1,
                max_tokens=s.max_new_tokens,
                stop=list(s.stop) or None,
                seed=s.seed,
            )
            for s in per_conversation(sampling, len(conversations))
        ]
        results = self.llm.chat(conversations, params, use_tqdm=False)
        return [
            Completion(
                text=r.outputs[0].text,
                num_tokens=len(r.outputs[0].token_ids),
                truncated=r.outputs[0].finish_reason == "length",
            )
            for r in results
        ]
