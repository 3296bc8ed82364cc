"""The transformers backend: the embedded default, on CPU or one GPU."""

from __future__ import annotations

import torch
from transformers import AutoModelForCausalLM, AutoTokenizer

from leafe_recipe.gpu import AUTO, choose_attention, model_dtype
from leafe_recipe.policy import Completion, Sampling, cut_at_stop, per_conversation
from leafe_recipe.prompts import Message


class HFPolicy:
    def __init__(
        self,
        path: str,
        device: str = "auto",
        dtype: str = "auto",
        max_batch_size: int = 64,
        attn_implementation: str = AUTO,
    ):
        if device == "auto":
            device = "cuda" if torch.cuda.is_available() else "cpu"
        self.device = torch.device(device)
        self.tokenizer = AutoTokenizer.from_pretrained(path)
        self.tokenizer.padding_side = "left"  # generation appends on the right
        if self.tokenizer.pad_token is None:
            self.tokenizer.pad_token = self.tokenizer.eos_token
        torch_dtype = "auto" if dtype == "auto" else getattr(torch, dtype)
        attention = choose_attention(attn_implementation, self.device.type == "cuda", model_dtype(path, dtype), f"hf backend on {self.device}")
        self.model = AutoModelForCausalLM.from_pretrained(path, dtype=torch_dtype, attn_implementation=attention).to(self.device)
        self.model.eval()
        # Sampling knobs a checkpoint's generation_config.json may set (Qwen2.5: repetition
        # penalty 1.05) that Sampling does not carry: transformers would apply them, vLLM with
        # explicit SamplingParams does not. Neutral values keep both backends on one distribution.
        for name, value in (("repetition_penalty", 1.0), ("min_p", None), ("typical_p", 1.0), ("no_repeat_ngram_size", 0)):
            setattr(self.model.generation_config, name, value)
        self.max_batch_size = max_batch_size
        self.calls = 0

    @torch.inference_mode()
    def generate(self, conversations: list[list[Message]], sampling: Sampling | list[Sampling]) -> list[Completion]:
        """One call for all conversations: grouped by sampling settings (transformers takes
        one per batch), each group split into chunks of `max_batch_size`.

        Each call reseeds torch with the first setting's `seed + call number`, so a rerun
        with the same inputs reproduces the same samples.
        """
        settings = per_conversation(sampling, len(conversations))
        if not conversations:
            return []
        torch.manual_seed(settings[0].seed + self.calls)
        self.calls += 1
        groups: dict[Sampling, list[int]] = {}
        for i, s in enumerate(settings):
            groups.setdefault(s, []).append(i)
        out: list[Completion | None] = [None] * len(conversations)
        for s, idx in groups.items():
            texts = [
                self.tokenizer.apply_chat_template(conversations[i], add_generation_prompt=True, tokenize=False)
                for i in idx
            ]
            for start in range(0, len(idx), self.max_batch_size):
                chunk = self._generate_chunk(texts[start : start + self.max_batch_size], s)
                for i, c in zip(idx[start : start + self.max_batch_size], chunk):
                    out[i] = c
        return out

    def _generate_chunk(self, texts: list[str], sampling: Sampling) -> list[Completion]:
        batch = self.tokenizer(texts, return_tensors="pt", padding=True, add_special_tokens=False).to(self.device)
        greedy = sampling.temperature == 0
        kwargs = dict(
            max_new_tokens=sampling.max_new_tokens,
            do_sample=not greedy,
            pad_token_id=self.tokenizer.pad_token_id,
            eos_token_id=self.model.generation_config.eos_token_id or self.tokenizer.eos_token_id,
        )
        if not greedy:
            kwargs.update(temperature=sampling.temperature, top_p=sampling.top_p, top_k=sampling.top_k)
        if sampling.stop:
            kwargs.update(stop_strings=list(sampling.stop), tokenizer=self.tokenizer)
        generated = self.model.generate(**batch, **kwargs)[:, batch["input_ids"].shape[1] :]
        eos_ids = kwargs["eos_token_id"]
        eos_ids = set(eos_ids if isinstance(eos_ids, list) else [eos_ids]) | {self.tokenizer.pad_token_id}
        completions = []
        for row in generated.tolist():
            n = next((i + 1 for i, t in enumerate(row) if t in eos_ids), len(row))
            ended = n < len(row) or row[-1] in eos_ids
            text, stopped = cut_at_stop(self.tokenizer.decode(row[:n], skip_special_tokens=True), sampling.stop)
            completions.append(Completion(text=text, num_tokens=n, truncated=not (ended or stopped)))
        return completions
