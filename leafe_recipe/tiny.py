"""The offline tiny model: a 2-layer random Qwen2 with a byte-level tokenizer and a
ChatML template, built locally so every command runs with no hub access.

It is the embedded default (`model=tiny`). Its outputs are noise; it exists so that
the whole pipeline (generation, SFT, evaluation) runs end to end on a laptop.
"""

from __future__ import annotations

import os
import shutil
import tempfile
from pathlib import Path

TINY = "tiny"  # the model name that resolves to this builder
VERSION = "v1"  # bump when the architecture or tokenizer changes
CHAT_TEMPLATE = (
    "{% for m in messages %}<|im_start|>{{ m['role'] }}\n{{ m['content'] }}<|im_end|>\n{% endfor %}"
    "{% if add_generation_prompt %}<|im_start|>assistant\n{% endif %}"
)
SPECIAL_TOKENS = ["<|endoftext|>", "<|im_start|>", "<|im_end|>"]


def cache_dir() -> Path:
    return Path(os.environ.get("LEAFE_CACHE", Path.home() / ".cache" / "leafe-recipe"))


def resolve_model(name_or_path: str) -> str:
    """`tiny` -> the locally built tiny model's directory; anything else is a hub id or
    a local directory and is passed through to `from_pretrained` unchanged."""
    if name_or_path == TINY:
        return str(build_tiny_model())
    return name_or_path


def build_tiny_model(directory: Path | None = None, seed: int = 0) -> Path:
    """Build (once) and return the tiny model directory; safe under concurrent callers."""
    target = Path(directory) if directory else cache_dir() / f"tiny-qwen2-{VERSION}"
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
        model_max_length=4096,
    )
    config = Qwen2Config(
        vocab_size=len(tokenizer),
        hidden_size=64,
        intermediate_size=128,
        num_hidden_layers=2,
        num_attention_heads=4,
        num_key_value_heads=2,
        max_position_embeddings=4096,
        tie_word_embeddings=True,
        bos_token_id=tokenizer.convert_tokens_to_ids("<|im_start|>"),
        eos_token_id=tokenizer.eos_token_id,
        pad_token_id=tokenizer.pad_token_id,
    )
    torch.manual_seed(seed)
    model = Qwen2ForCausalLM(config)
    model.generation_config.eos_token_id = tokenizer.eos_token_id
    model.generation_config.pad_token_id = tokenizer.pad_token_id

    target.parent.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(prefix=".tiny-", dir=target.parent))
    model.save_pretrained(staging)
    tokenizer.save_pretrained(staging)
    try:
        staging.rename(target)  # atomic: a concurrent builder either wins or finds it done
    except OSError:
        shutil.rmtree(staging, ignore_errors=True)
    return target


if __name__ == "__main__":
    print(build_tiny_model())
