"""The offline tiny model: a 2-layer Qwen2 with a byte-level tokenizer and a ChatML
template, built locally so every command runs with no hub access.

It is the embedded default (`model=tiny`), so that the whole pipeline (generation,
exploration, SFT, evaluation) runs end to end on a laptop. A randomly initialised
network only writes noise, which no environment accepts and no reflection parser
reads, so the builder teaches it the two answer formats the pipeline parses, for a
few seconds on the last tokens of real prompts: an action with a random direction
(a random-walk Sokoban agent), leaning towards the direction an experience names
when the prompt holds one, and a reflection with a random rollback step and fix. It knows nothing
else: its rollouts sometimes solve easy rooms by chance, which is what LEAFE's
exploration needs to find successful branches.
"""

from __future__ import annotations

import hashlib
import os
import random
import shutil
import tempfile
from pathlib import Path

TINY = "tiny"  # the model name that resolves to this builder
CHAT_TEMPLATE = (
    "{% for m in messages %}<|im_start|>{{ m['role'] }}\n{{ m['content'] }}<|im_end|>\n{% endfor %}"
    "{% if add_generation_prompt %}<|im_start|>assistant\n{% endif %}"
)
SPECIAL_TOKENS = ["<|endoftext|>", "<|im_start|>", "<|im_end|>"]


def cache_dir() -> Path:
    return Path(os.environ.get("LEAFE_CACHE", Path.home() / ".cache" / "leafe-recipe"))


def resolve_model(name_or_path: str) -> str:
    """`tiny` / `micro` -> the locally built tiny / micro model's directory (micro.py); anything
    else is a hub id or a local directory, passed through to `from_pretrained` unchanged."""
    if name_or_path == TINY:
        return str(build_tiny_model())
    if name_or_path == "micro":
        from leafe_recipe.micro import build_micro_model

        return str(build_micro_model())
    return name_or_path


# Everything the tiny model is built from: this builder, the prompts and the environment
# whose episodes teach it the formats. Editing any of them rebuilds it.
_SOURCES = ("tiny.py", "prompts.py", "envs/base.py", "envs/sokoban.py")


def source_hash(package_dir: Path = Path(__file__).resolve().parent) -> str:
    digest = hashlib.sha256()
    for name in _SOURCES:
        digest.update(name.encode() + b"\0" + (package_dir / name).read_bytes())
    return digest.hexdigest()[:12]


def build_tiny_model(directory: Path | None = None, seed: int = 0) -> Path:
    """Build (once) and return the tiny model directory; safe under concurrent callers."""
    version = source_hash()
    target = Path(directory) if directory else cache_dir() / f"tiny-qwen2-{version}"
    if (target / "config.json").exists():
        return target
    import torch
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers
    from transformers import PreTrainedTokenizerFast, Qwen2Config, Qwen2ForCausalLM

    byte_chars = pre_tokenizers.ByteLevel.alphabet()
    vocab = {ch: i for i, ch in enumerate(sorted(byte_chars))}
    backend = Tokenizer(models.BPE(vocab=vocab, merges=[]))
    backend.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False, use_regex=False)
    backend.decoder = decoders.ByteLevel()
    tokenizer = PreTrainedTokenizerFast(
        tokenizer_object=backend,
        eos_token="<|im_end|>",
        pad_token="<|endoftext|>",
        additional_special_tokens=SPECIAL_TOKENS[1:2],
        chat_template=CHAT_TEMPLATE,
        padding_side="left",
        model_max_length=32768,
    )
    config = Qwen2Config(
        vocab_size=len(tokenizer),
        hidden_size=64,
        intermediate_size=128,
        num_hidden_layers=2,
        num_attention_heads=4,
        num_key_value_heads=2,
        max_position_embeddings=32768,
        # Every layer attends to the last 128 tokens only, so a model taught on prompt
        # tails sees the same attention span on full-length prompts.
        use_sliding_window=True,
        sliding_window=128,
        max_window_layers=0,
        tie_word_embeddings=True,
        bos_token_id=tokenizer.convert_tokens_to_ids("<|im_start|>"),
        eos_token_id=tokenizer.eos_token_id,
        pad_token_id=tokenizer.pad_token_id,
    )
    torch.manual_seed(seed)
    model = Qwen2ForCausalLM(config)
    model.generation_config.eos_token_id = tokenizer.eos_token_id
    model.generation_config.pad_token_id = tokenizer.pad_token_id
    teach_formats(model, tokenizer, seed)

    target.parent.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(prefix=".tiny-", dir=target.parent))
    model.save_pretrained(staging)
    tokenizer.save_pretrained(staging)
    try:
        staging.rename(target)  # atomic: a concurrent builder either wins or finds it done
    except OSError:
        shutil.rmtree(staging, ignore_errors=True)
    return target


def _format_examples(rng: random.Random, n: int) -> list[tuple[str, str]]:
    """(chat prompt, answer) pairs from random-walk Sokoban episodes: actions (half of them
    with an experience "move D." in the prompt, answered by moving D) and reflections."""
    from leafe_recipe.envs.base import get_family
    from leafe_recipe.prompts import build_messages, build_reflection

    sokoban = get_family("sokoban")
    directions = ("up", "down", "left", "right")
    examples = []
    for task in sokoban.tasks("train", n // 8):
        env = sokoban.make(max_steps=12)
        observations, actions = [env.reset(task)], []
        for _ in range(8):
            d = rng.choice(directions)
            # half the prompts hold an experience; the answer follows it half of the time
            experience = f"move {rng.choice([d, rng.choice(directions)])}." if rng.random() < 0.5 else None
            prompt = build_messages(sokoban.system_prompt, observations, actions, window=2, experience=experience)
            examples.append((prompt, f"Action: {d}"))
            actions.append(examples[-1][1])
            step = env.step(actions[-1])
            observations.append(step.observation)
            t = len(actions)
            answer = f"Rollback step: {rng.randint(1, t)}\nExperience: move {rng.choice(directions)}."
            examples.append((build_reflection(observations, actions, finished=rng.random() < 0.5), answer))
            if step.done:
                break
    return examples


def teach_formats(model, tokenizer, seed: int, steps: int = 300, context: int = 160, batch: int = 16) -> None:
    """A few hundred AdamW steps on (last `context` prompt tokens, answer) pairs; the loss
    covers the answer only. Attention is relative (RoPE) and limited to a sliding window
    shorter than `context`, so what is learnt on the tail of a prompt holds at the end
    of a full-length one."""
    import torch

    rng = random.Random(seed)
    threads = torch.get_num_threads()
    torch.set_num_threads(1)  # two threads on a busy 2-core machine run this ten times slower
    rows = []
    for messages, answer in _format_examples(rng, 64):
        prompt = tokenizer.apply_chat_template(messages, add_generation_prompt=True, tokenize=False)
        p = tokenizer(prompt, add_special_tokens=False)["input_ids"][-context:]
        a = tokenizer(answer, add_special_tokens=False)["input_ids"] + [tokenizer.eos_token_id]
        rows.append((p + a, [-100] * len(p) + a))
    width = max(len(ids) for ids, _ in rows)
    ids = torch.tensor([r + [tokenizer.pad_token_id] * (width - len(r)) for r, _ in rows])
    labels = torch.tensor([lab + [-100] * (width - len(lab)) for _, lab in rows])
    optimizer = torch.optim.AdamW(model.parameters(), lr=3e-3)
    model.train()
    for _ in range(steps):
        pick = torch.tensor([rng.randrange(len(rows)) for _ in range(batch)])
        loss = model(input_ids=ids[pick], labels=labels[pick]).loss
        loss.backward()
        optimizer.step()
        optimizer.zero_grad()
    model.eval()
    torch.set_num_threads(threads)


if __name__ == "__main__":
    print(build_tiny_model())
