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

import random
import shutil
import tempfile
from pathlib import Path

CHAT_TEMPLATE = (
    "{% for m in messages %}<|im_start|>{{ m['role'] }}\n{{ m['content'] }}<|im_end|>\n{% endfor %}"
    "{% if add_generation_prompt %}<|im_start|>assistant\n{% endif %}"
)
SPECIAL_TOKENS = ["<|endoftext|>", "<|im_start|>", "<|im_end|>"]
ROOMS = 8  # Sokoban rooms of the build split whose random-walk episodes teach the formats
SETTINGS = {"hidden_size": 64, "layers": 2, "heads": 4, "kv_heads": 2, "sliding_window": 128, "steps": 300, "context": 160,
            "batch": 16, "learning_rate": 3e-3, "seed": 0}  # fmt: skip


def manifest():
    """What the tiny model learns from: the build split's rooms (leafe_recipe/manifest.py)."""
    from leafe_recipe.envs.base import get_family
    from leafe_recipe.manifest import Manifest, learned

    sokoban = get_family("sokoban")
    return Manifest(prompt=None, learned_from=learned(sokoban, sokoban.tasks("build", ROOMS), "tiny build"), lineage=["tiny build"])


def build(directory: Path | None = None) -> Path:
    """Build (once) and return the tiny model directory, keyed by its examples and settings
    (models.build_key); safe under concurrent callers."""
    from leafe_recipe import cache_dir
    from leafe_recipe.manifest import write
    from leafe_recipe.models import build_key

    examples = _format_examples(random.Random(SETTINGS["seed"]))
    key = build_key(examples, SETTINGS)
    target = Path(directory) if directory else cache_dir() / f"tiny-qwen2-{key}"
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
        hidden_size=SETTINGS["hidden_size"],
        intermediate_size=2 * SETTINGS["hidden_size"],
        num_hidden_layers=SETTINGS["layers"],
        num_attention_heads=SETTINGS["heads"],
        num_key_value_heads=SETTINGS["kv_heads"],
        max_position_embeddings=32768,
        # Every layer attends to the last 128 tokens only, so a model taught on prompt
        # tails sees the same attention span on full-length prompts.
        use_sliding_window=True,
        sliding_window=SETTINGS["sliding_window"],
        max_window_layers=0,
        tie_word_embeddings=True,
        bos_token_id=tokenizer.convert_tokens_to_ids("<|im_start|>"),
        eos_token_id=tokenizer.eos_token_id,
        pad_token_id=tokenizer.pad_token_id,
    )
    torch.manual_seed(SETTINGS["seed"])
    model = Qwen2ForCausalLM(config)
    model.generation_config.eos_token_id = tokenizer.eos_token_id
    model.generation_config.pad_token_id = tokenizer.pad_token_id
    teach_formats(model, tokenizer, examples)

    target.parent.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(prefix=".tiny-", dir=target.parent))
    model.save_pretrained(staging)
    tokenizer.save_pretrained(staging)
    made = manifest()
    made.identity = key
    write(staging, made)
    try:
        staging.rename(target)  # atomic: a concurrent builder either wins or finds it done
    except OSError:
        shutil.rmtree(staging, ignore_errors=True)
    return target


def _format_examples(rng: random.Random) -> list[tuple[list, str]]:
    """(chat messages, answer) pairs from random-walk Sokoban episodes on the build split's rooms:
    actions (half of them with an experience "move D." in the prompt, answered by moving D) and
    reflections."""
    from leafe_recipe.envs.base import get_family
    from leafe_recipe.prompts import build_messages, build_reflection

    sokoban = get_family("sokoban")
    directions = ("up", "down", "left", "right")
    examples = []
    for task in sokoban.tasks("build", ROOMS):
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


def teach_formats(model, tokenizer, examples: list[tuple[list, str]]) -> None:
    """A few hundred AdamW steps on (last `context` prompt tokens, answer) pairs; the loss
    covers the answer only. Attention is relative (RoPE) and limited to a sliding window
    shorter than `context`, so what is learnt on the tail of a prompt holds at the end
    of a full-length one."""
    import torch

    rng = random.Random(SETTINGS["seed"])
    steps, context, batch = SETTINGS["steps"], SETTINGS["context"], SETTINGS["batch"]
    threads = torch.get_num_threads()
    torch.set_num_threads(1)  # two threads on a busy 2-core machine run this ten times slower
    rows = []
    for messages, answer in examples:
        prompt = tokenizer.apply_chat_template(messages, add_generation_prompt=True, tokenize=False)
        p = tokenizer(prompt, add_special_tokens=False)["input_ids"][-context:]
        a = tokenizer(answer, add_special_tokens=False)["input_ids"] + [tokenizer.eos_token_id]
        rows.append((p + a, [-100] * len(p) + a))
    width = max(len(ids) for ids, _ in rows)
    ids = torch.tensor([r + [tokenizer.pad_token_id] * (width - len(r)) for r, _ in rows])
    labels = torch.tensor([lab + [-100] * (width - len(lab)) for _, lab in rows])
    optimizer = torch.optim.AdamW(model.parameters(), lr=SETTINGS["learning_rate"])
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
    print(build())
