"""The transformers backend: the embedded default, on CPU or one GPU.

Sampling is keyed by request: each conversation's completion is drawn with the Gumbel-max
trick (the argmax of logits / temperature plus Gumbel noise, restricted to the top-k and
top-p tokens, is an exact sample of the softmax), whose noise at step t for token v is a
counter-based hash of (the request's seed, t, v). A completion therefore depends only on its
prompt and its seed, not on the other conversations of the batch, on the order of calls, or
on torch's global random state; the batch is decoded greedily over the noised scores. (Left
padding of a different batch changes the logits by float rounding only, which flips a draw
only at a near tie of two noised scores.)

Multi-turn episodes re-send their whole history every turn, so the key/value states of the
sequences a call ends with are kept (`PrefixCache`) and the next call computes only what its
prompts add to them (the answer's end and the new feedback): on a whole-history prompt the
cost of a turn grows with the turn's new tokens, not with the episode's length, as vLLM's
prefix caching does. The cached states are exactly those a full prefill computes (positions
follow the attention mask, as in a left-padded batch), up to float rounding.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field

import torch
from transformers import AutoModelForCausalLM, AutoTokenizer, DynamicCache, LogitsProcessor, LogitsProcessorList

from leafe_recipe.gpu import AUTO, choose_attention, model_dtype
from leafe_recipe.policy import Completion, Sampling, cut_at_stop, per_conversation
from leafe_recipe.prompts import Message

_M64 = (1 << 64) - 1


def _signed(value: int) -> int:
    return value - (1 << 64) if value >= 1 << 63 else value


_GOLDEN, _MIX1, _MIX2 = _signed(0x9E3779B97F4A7C15), _signed(0xBF58476D1CE4E5B9), _signed(0x94D049BB133111EB)


def _srl(z: torch.Tensor, n: int) -> torch.Tensor:
    """Logical right shift of int64 values (torch's >> is arithmetic)."""
    return (z >> n) & ((1 << (64 - n)) - 1)


def _mix(z: torch.Tensor) -> torch.Tensor:
    """splitmix64's finaliser, in wrapping int64 arithmetic."""
    z = (z ^ _srl(z, 30)) * _MIX1
    z = (z ^ _srl(z, 27)) * _MIX2
    return z ^ _srl(z, 31)


def gumbel_noise(seeds: torch.Tensor, step: int, vocab: int) -> torch.Tensor:
    """(rows x vocab) standard Gumbel noise, a pure function of (seed, step, token)."""
    base = _mix(seeds.to(torch.int64) * _GOLDEN + _mix(torch.tensor(step + 1, dtype=torch.int64, device=seeds.device)))
    z = _mix(base[:, None] + torch.arange(vocab, dtype=torch.int64, device=seeds.device)[None, :] * _GOLDEN)
    u = (_srl(z, 11).to(torch.float64) + 0.5) / float(1 << 53)  # uniform on (0, 1)
    return -torch.log(-torch.log(u))


class KeyedSampler(LogitsProcessor):
    """Temperature, top-k and top-p, then Gumbel noise keyed by each row's request seed: the
    greedy choice over the returned scores is a sample of the filtered softmax."""

    def __init__(self, sampling: Sampling, seeds: list[int], prompt_width: int):
        self.sampling, self.prompt_width = sampling, prompt_width
        self.seeds = torch.tensor(seeds, dtype=torch.int64)

    def __call__(self, input_ids: torch.LongTensor, scores: torch.FloatTensor) -> torch.FloatTensor:
        s = self.sampling
        logits = scores.float() / s.temperature
        if s.top_k > 0 and s.top_k < logits.shape[-1]:
            kth = torch.topk(logits, s.top_k, dim=-1).values[:, -1:]
            logits = logits.masked_fill(logits < kth, float("-inf"))
        if s.top_p < 1.0:
            ordered, index = torch.sort(logits, descending=True, dim=-1)
            before = torch.softmax(ordered, dim=-1).cumsum(dim=-1) - torch.softmax(ordered, dim=-1)
            drop = torch.zeros_like(logits, dtype=torch.bool).scatter(-1, index, before > s.top_p)
            logits = logits.masked_fill(drop, float("-inf"))
        noise = gumbel_noise(self.seeds.to(logits.device), input_ids.shape[1] - self.prompt_width, logits.shape[-1])
        return logits + noise.to(logits.dtype)


@dataclass
class Prefix:
    """A sequence's token ids and, per layer, its key and value states (heads x tokens x dims)."""

    tokens: tuple[int, ...]
    keys: list[torch.Tensor]
    values: list[torch.Tensor]


@dataclass
class PrefixCache:
    """The sequences one generate call ended with, found again by the prompts of the next call:
    a prompt reuses the longest prefix it shares with any of them (matched on token ids), so an
    answer that the next prompt writes otherwise costs only the tokens from there on."""

    entries: dict[tuple[int, int], Prefix] = field(default_factory=dict)  # (prefix length, rolling hash) -> a sequence

    @staticmethod
    def _hashes(ids: list[int] | tuple[int, ...]) -> list[int]:
        out, h = [0], 0
        for t in ids:
            h = (h * 1_000_003 + t + 1) & 0xFFFFFFFFFFFF
            out.append(h)
        return out

    def longest(self, ids: list[int]) -> tuple[Prefix, int] | None:
        """A stored sequence and the length of the longest prefix it shares with `ids`, leaving
        at least one token of `ids` to compute."""
        hashes = self._hashes(ids)
        for length in range(len(ids) - 1, 0, -1):
            hit = self.entries.get((length, hashes[length]))
            if hit is not None and hit.tokens[:length] == tuple(ids[:length]):
                return hit, length
        return None

    def add(self, prefix: Prefix) -> None:
        """The sequence, under each of its prefixes (their states are the prefix's own: attention is causal)."""
        for length, h in enumerate(self._hashes(prefix.tokens)[1:], start=1):
            self.entries[(length, h)] = prefix


class HFPolicy:
    def __init__(
        self,
        path: str,
        device: str = "auto",
        dtype: str = "auto",
        max_batch_size: int = 64,
        attn_implementation: str = AUTO,
        prefix_cache: bool = True,
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
        for name in ("temperature", "top_p", "top_k"):  # decoding is greedy over KeyedSampler's scores
            setattr(self.model.generation_config, name, None)
        self.model.generation_config.do_sample = False
        self.max_batch_size = max_batch_size
        # Sliding-window layers keep only their window, which a prefix assembled here would not respect.
        sliding = "sliding_attention" in (getattr(self.model.config, "layer_types", None) or [])
        self.cache = PrefixCache() if prefix_cache and not sliding else None
        self.reused_tokens = 0  # prompt tokens taken from the prefix cache instead of computed (what it saved)

    @torch.inference_mode()
    def generate(self, conversations: list[list[Message]], sampling: Sampling | list[Sampling]) -> list[Completion]:
        """One call for all conversations: grouped by sampling settings (transformers takes one
        per batch; a request's seed is not part of the group), each group split into chunks of
        `max_batch_size`. Each completion depends on its conversation and its seed only."""
        settings = per_conversation(sampling, len(conversations))
        groups: dict[Sampling, list[int]] = {}
        for i, s in enumerate(settings):
            groups.setdefault(dataclasses.replace(s, seed=0), []).append(i)
        out: list[Completion | None] = [None] * len(conversations)
        ended = PrefixCache() if self.cache is not None else None  # the sequences this call ends with
        for s, idx in groups.items():
            texts = [
                self.tokenizer.apply_chat_template(conversations[i], add_generation_prompt=True, tokenize=False)
                for i in idx
            ]
            for start in range(0, len(idx), self.max_batch_size):
                rows = idx[start : start + self.max_batch_size]
                chunk = self._generate_chunk(texts[start : start + self.max_batch_size], s, [settings[i].seed for i in rows], ended)
                for i, c in zip(rows, chunk):
                    out[i] = c
        if ended is not None:
            self.cache = ended
        return out

    def _generate_chunk(self, texts: list[str], sampling: Sampling, seeds: list[int], ended: PrefixCache | None) -> list[Completion]:
        batch = self.tokenizer(texts, return_tensors="pt", padding=True, add_special_tokens=False).to(self.device)
        width = batch["input_ids"].shape[1]
        kwargs = dict(
            max_new_tokens=sampling.max_new_tokens,
            do_sample=False,
            pad_token_id=self.tokenizer.pad_token_id,
            eos_token_id=self.model.generation_config.eos_token_id or self.tokenizer.eos_token_id,
        )
        if sampling.temperature > 0:
            kwargs["logits_processor"] = LogitsProcessorList([KeyedSampler(sampling, seeds, width)])
        if sampling.stop:
            kwargs.update(stop_strings=list(sampling.stop), tokenizer=self.tokenizer)
        if ended is not None:
            kwargs.update(past_key_values=self._past(batch), return_dict_in_generate=True)
        out = self.model.generate(**batch, **kwargs)
        generated = (out.sequences if ended is not None else out)[:, width:]
        eos_ids = kwargs["eos_token_id"]
        eos_ids = set(eos_ids if isinstance(eos_ids, list) else [eos_ids]) | {self.tokenizer.pad_token_id}
        completions, kept = [], []
        for row in generated.tolist():
            n = next((i + 1 for i, t in enumerate(row) if t in eos_ids), len(row))
            ended_here = n < len(row) or row[-1] in eos_ids
            text, stopped = cut_at_stop(self.tokenizer.decode(row[:n], skip_special_tokens=True), sampling.stop)
            completions.append(Completion(text=text, num_tokens=n, truncated=not (ended_here or stopped)))
            kept.append(row[: min(n, len(row) - 1)])  # the last token drawn was never fed: no states for it
        if ended is not None:
            self._keep(batch, kept, out.past_key_values, ended)
        return completions

    def _past(self, batch) -> DynamicCache | None:
        """The key/value states of the longest cached prefix every row shares in the padded layout
        (row i's pad, then its cached tokens), or None when there is nothing worth reusing."""
        ids, mask = batch["input_ids"], batch["attention_mask"]
        pads = (mask == 0).sum(dim=1).tolist()
        rows = [[t for t, m in zip(r, mk) if m] for r, mk in zip(ids.tolist(), mask.tolist())]
        found = [self.cache.longest(r) for r in rows]
        hits = [f[0] if f else None for f in found]
        shared = min(pad + (f[1] if f else 0) for pad, f in zip(pads, found))  # every row's states known up to here
        reused = sum(max(0, shared - pad) for pad, h in zip(pads, hits) if h)
        some = next((h for h in hits if h), None)
        if some is None or reused == 0:
            return None
        cache = DynamicCache(config=self.model.config)
        for layer in range(len(some.keys)):
            heads, _, dims = some.keys[layer].shape
            keys = torch.zeros((len(rows), heads, shared, dims), dtype=some.keys[layer].dtype, device=self.device)
            values = torch.zeros_like(keys)
            for i, (pad, hit) in enumerate(zip(pads, hits)):
                if hit and shared > pad:  # a pad position's states are masked out: zeros serve
                    keys[i, :, pad:shared] = hit.keys[layer][:, : shared - pad]
                    values[i, :, pad:shared] = hit.values[layer][:, : shared - pad]
            cache.update(keys, values, layer)
        self.reused_tokens += reused
        return cache

    def _keep(self, batch, kept: list[list[int]], past: DynamicCache, ended: PrefixCache) -> None:
        """Each row's prompt and answer tokens with their states, for the next call to extend."""
        mask = batch["attention_mask"]
        width = mask.shape[1]
        for i, answer in enumerate(kept):
            pad = int((mask[i] == 0).sum())
            tokens = tuple(t for t, m in zip(batch["input_ids"][i].tolist(), mask[i].tolist()) if m) + tuple(answer)
            end = width + len(answer)
            ended.add(Prefix(tokens, [layer.keys[i, :, pad:end].clone() for layer in past.layers],
                             [layer.values[i, :, pad:end].clone() for layer in past.layers]))  # fmt: skip
