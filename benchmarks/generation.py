"""The hf backend's new tokens/s against raw transformers `generate`, same model, batch, prompts
and sampling, in one run; and where sampling's cost over greedy decoding goes.

    .venv/bin/python benchmarks/generation.py [--model tiny|micro|DIR|qwen2.5-0.5b-shape]
        [--batch 32] [--prompt-tokens 512] [--new-tokens 128] [--device auto] [--dtype auto]

Rows, each the best of --repeat timed calls (in rounds over the rows) after an untimed warm-up:
- raw generate, greedy; raw generate, sampling with the project's pinned settings
  (temperature 1, top_p 1, top_k 0); raw generate, sampling with transformers' own defaults
  (top_k 50 where the model's generation config sets nothing);
- the project: `HFPolicy.generate` (chat template, tokenisation, its request-keyed Gumbel-max
  sampler, decoding), and raw generate with that same sampler, whose tokens must be the
  project's token for token; the project's time outside `model.generate` is printed as a share.
- raw generate with the Gumbel-max trick: a logits processor adds Gumbel noise and decoding is
  greedy (the same distribution as sampling at temperature 1, without softmax and
  torch.multinomial, whose input checks wait for the GPU at every step);
Then the sampling step alone on [batch, vocab] float32 logits: argmax, softmax + multinomial
(what transformers does), and the Gumbel-max trick.

`qwen2.5-0.5b-shape` is a randomly initialised Qwen2 of Qwen2.5-0.5B's shape (24 layers,
hidden 896, vocabulary 151,936; the issue's GPU measurement) with the tiny model's tokenizer:
random weights rarely stop early, so every row generates the full length. For a GPU.
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
from pathlib import Path

import torch
from transformers import LogitsProcessorList

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from leafe_recipe.policy import Sampling  # noqa: E402
from leafe_recipe.policy.hf import HFPolicy  # noqa: E402
from leafe_recipe import tiny  # noqa: E402
from leafe_recipe.models import resolve as resolve_model  # noqa: E402

QWEN_SHAPE = "qwen2.5-0.5b-shape"
FILLER = "the box is left of the wall and the target is below it; "


def qwen_shaped_model(folder: Path) -> str:
    """A random Qwen2 with Qwen2.5-0.5B's dimensions and the tiny model's tokenizer, saved to `folder`."""
    from transformers import AutoTokenizer, Qwen2Config, Qwen2ForCausalLM

    tokenizer = AutoTokenizer.from_pretrained(tiny.build())
    config = Qwen2Config(vocab_size=151936, hidden_size=896, intermediate_size=4864, num_hidden_layers=24,
                         num_attention_heads=14, num_key_value_heads=2, max_position_embeddings=32768, tie_word_embeddings=True,
                         bos_token_id=tokenizer.pad_token_id, eos_token_id=tokenizer.eos_token_id, pad_token_id=tokenizer.pad_token_id)  # fmt: skip
    torch.manual_seed(0)
    Qwen2ForCausalLM(config).save_pretrained(folder)
    tokenizer.save_pretrained(folder)
    return str(folder)


def conversations(tokenizer, batch: int, prompt_tokens: int) -> list[list[dict[str, str]]]:
    """`batch` distinct one-message chats of about `prompt_tokens` tokens each, chat template included."""
    per_filler = len(tokenizer(FILLER * 8, add_special_tokens=False)["input_ids"]) / 8
    repeats = max(1, round(prompt_tokens / per_filler))
    return [[{"role": "user", "content": f"room {i}: " + FILLER * repeats}] for i in range(batch)]


def sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def new_tokens(rows: torch.Tensor, eos: set[int]) -> tuple[int, int]:
    """(tokens up to and including each row's first end token, decoding steps taken)."""
    total = 0
    for row in rows.tolist():
        total += next((i + 1 for i, t in enumerate(row) if t in eos), len(row))
    return total, rows.shape[1]


class Recorder:
    """Wraps model.generate: records the inputs, settings and output of the project's call, and its time."""

    def __init__(self, model, device: torch.device):
        self.model, self.device, self.inner = model, device, model.generate
        self.calls: list[tuple[dict, torch.Tensor]] = []
        self.seconds = 0.0

    def __call__(self, **kwargs):
        sync(self.device)
        start = time.perf_counter()
        out = self.inner(**kwargs)
        sync(self.device)
        self.seconds += time.perf_counter() - start
        self.calls.append((kwargs, out))
        return out


class GumbelNoise:
    """A logits processor: scores plus Gumbel(0, 1) noise, so that greedy decoding samples."""

    def __call__(self, input_ids: torch.Tensor, scores: torch.Tensor) -> torch.Tensor:
        return scores - torch.empty_like(scores).exponential_().log()


def sampling_step(batch: int, vocab: int, device: torch.device, iterations: int) -> dict[str, float]:
    """Microseconds per call of each way to pick the next token from [batch, vocab] float32 logits."""
    logits = torch.randn(batch, vocab, device=device)
    ways = {
        "argmax (greedy)": lambda: logits.argmax(-1),
        "softmax + multinomial (transformers' sampling)": lambda: torch.multinomial(logits.softmax(-1), 1),
        "Gumbel-max (argmax of logits + Gumbel noise)": lambda: (logits - torch.empty_like(logits).exponential_().log()).argmax(-1),
    }
    times = {}
    for name, way in ways.items():
        way()
        sync(device)
        start = time.perf_counter()
        for _ in range(iterations):
            way()
        sync(device)
        times[name] = (time.perf_counter() - start) / iterations * 1e6
    return times


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--model", default="tiny", help=f"tiny, micro, a model directory, or {QWEN_SHAPE} (default tiny)")
    ap.add_argument("--batch", type=int, default=32)
    ap.add_argument("--prompt-tokens", type=int, default=512)
    ap.add_argument("--new-tokens", type=int, default=128)
    ap.add_argument("--device", default="auto", help="auto: cuda when available")
    ap.add_argument("--dtype", default="auto", help="auto: bfloat16 on cuda, float32 on cpu")
    ap.add_argument("--repeat", type=int, default=3, help="timed calls of each row; the best is reported")
    ap.add_argument("--step-iterations", type=int, default=50, help="calls per sampling-step timing")
    args = ap.parse_args()

    device = torch.device("cuda" if args.device == "auto" and torch.cuda.is_available() else "cpu" if args.device == "auto" else args.device)
    dtype = args.dtype if args.dtype != "auto" else ("bfloat16" if device.type == "cuda" else "float32")
    with tempfile.TemporaryDirectory() as tmp:
        path = qwen_shaped_model(Path(tmp)) if args.model == QWEN_SHAPE else resolve_model(args.model)
        policy = HFPolicy(path, device=str(device), dtype=dtype, max_batch_size=args.batch)
    model, tokenizer = policy.model, policy.tokenizer
    chats = conversations(tokenizer, args.batch, args.prompt_tokens)
    sampling = Sampling(max_new_tokens=args.new_tokens, seed=0)
    recorder = Recorder(model, device)
    model.generate = recorder

    def project():
        recorder.calls.clear()
        policy.generate(chats, sampling)
        return recorder.calls[0][1]

    project()  # the project's call, recorded: the raw rows reuse its token ids and settings
    kwargs = recorder.calls[0][0]
    inputs = {k: kwargs[k] for k in ("input_ids", "attention_mask")}
    prompt_len = inputs["input_ids"].shape[1]
    eos = {tokenizer.eos_token_id, tokenizer.pad_token_id}
    common = dict(max_new_tokens=args.new_tokens, pad_token_id=tokenizer.pad_token_id, eos_token_id=kwargs["eos_token_id"])

    def raw(**settings):
        @torch.inference_mode()
        def call():
            torch.manual_seed(sampling.seed)
            return recorder.inner(**inputs, **common, **settings)

        return call

    project_row = "project: HFPolicy.generate, sampling"
    rows = {
        "raw generate, greedy": raw(do_sample=False),
        "raw generate, sampling (T 1, top_p 1, top_k 0)": raw(do_sample=True, temperature=1.0, top_p=1.0, top_k=0),
        "raw generate, sampling (transformers' defaults)": raw(do_sample=True),
        "raw generate, Gumbel-max (noise + greedy)": raw(do_sample=False, logits_processor=LogitsProcessorList([GumbelNoise()])),
        "raw generate, the project's keyed sampler": raw(do_sample=False, logits_processor=kwargs["logits_processor"]),
        project_row: project,
    }
    # Rounds over every row (not each row's calls in a row), so that a busy machine slows all rows alike.
    results: dict[str, tuple[torch.Tensor, float]] = {}
    inside_s = 0.0
    for name, call in rows.items():
        call()  # warm-up
    for _ in range(args.repeat):
        for name, call in rows.items():
            recorder.seconds = 0.0
            sync(device)
            start = time.perf_counter()
            out = call()
            sync(device)
            seconds = time.perf_counter() - start
            if name not in results or seconds < results[name][1]:
                results[name] = (out[:, prompt_len:], seconds)
                if name == project_row:
                    inside_s = recorder.seconds
    project_s = results[project_row][1]

    print(f"model {args.model} ({sum(p.numel() for p in model.parameters()) / 1e6:.1f}M parameters, vocabulary "
          f"{model.config.vocab_size}), {dtype}, {device} ({torch.cuda.get_device_name(device) if device.type == 'cuda' else 'CPU'}), "
          f"batch {args.batch}, prompts of {prompt_len} tokens (padded), up to {args.new_tokens} new tokens")  # fmt: skip
    rates = {}
    for name, (rows_out, seconds) in results.items():
        tokens, steps = new_tokens(rows_out, eos)
        rates[name] = tokens / seconds
        print(f"{name:52s} {rates[name]:10.1f} new tokens/s  {1000 * seconds / steps:8.2f} ms/step  ({tokens} tokens, {steps} steps, {seconds:.2f} s)")
    pinned, gumbel = "raw generate, sampling (T 1, top_p 1, top_k 0)", "raw generate, Gumbel-max (noise + greedy)"
    keyed = "raw generate, the project's keyed sampler"
    same = torch.equal(results[project_row][0], results[keyed][0])
    same_gumbel = torch.equal(results[gumbel][0], results[pinned][0])
    per_step = {name: seconds / max(1, rows_out.shape[1]) for name, (rows_out, seconds) in results.items()}
    print(f"ratio project / raw generate with its sampler, new tokens/s (same tokens: {same}): {rates[project_row] / rates[keyed]:.2f}x")
    print(f"ratio project / raw generate sampling, new tokens/s: {rates[project_row] / rates[pinned]:.2f}x")
    print(f"the project's time outside model.generate (template, tokenising, decoding): {100 * (1 - inside_s / project_s):.1f}%")
    print(f"ratio sampling / greedy, ms per step (raw generate): {per_step[pinned] / per_step['raw generate, greedy']:.2f}x")
    print(f"ratio Gumbel-max / sampling, ms per step (raw generate; same tokens: {same_gumbel}): {per_step[gumbel] / per_step[pinned]:.2f}x")
    vocab = model.config.vocab_size
    for name, us in sampling_step(args.batch, vocab, device, args.step_iterations).items():
        print(f"next-token pick on [{args.batch}, {vocab}] float32 logits, {name:48s} {us:10.1f} us")


if __name__ == "__main__":
    main()
