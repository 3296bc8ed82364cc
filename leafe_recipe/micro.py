"""The micro model (`model=micro`): a small Qwen3 that plays Sokoban with partial skill,
follows a hint and reflects, built on CPU in minutes so the methods can be compared on
something that is not a random walker. What it can do is measured and printed when it is
built (docs/micro_model.md has the build the study used, and the builds before it).

No model hub is reachable from this project's machines, so the project makes the model
itself, from a seed, through its own stack:

1. data from the Sokoban solver, on rooms of the build split (disjoint by content from every
   train, validation and test room: envs/sokoban.py's SHARES): per room, an episode of a noisy solver (the optimal move with probability
   `optimal_share`, else a random one), whose every step is a play example; reflections on
   it every K steps and at its end, answered in the reflection format with the first
   mistake as the rollback step (with probability `reflection_label_share`, else a random
   step) and its fix as the experience, or `none` for a live episode still on a shortest
   plan; and hinted branches at its mistakes (the first one and `hinted_branches - 1`
   others): rolled back there, the hint "At step t, move M instead of A." placed where
   LEAFE places an experience, the hinted move as the first answer, the noisy solver after it,
   and at the step it opens one example per move a hint may name (all but A), each answered
   with its hinted move, so that only the hint tells the answers apart, and each again at the
   next step, where the hint no longer applies;
2. a byte-level BPE tokenizer trained on that text without word splitting, so the
   environment's fixed phrases become few tokens, with every room row one token;
3. a randomly initialised Qwen3 trained on the examples by the OpenRLHF SFT launch every
   method uses (leafe_recipe.train);
4. its abilities measured on validation rooms it never saw (`measure`) and printed: Pass@k beside a random
   walker, success from a failed attempt's first mistake with and without a correct hint,
   and where its reflections roll back compared with a uniformly random step.

Its reflection is taught from solver labels: a stand-in for an instruct LLM's judgement,
not a model's own insight. Cached under LEAFE_CACHE, keyed by what it learned from: its
generated examples, MicroConfig, the room settings and the library versions (models.build_key).
"""

from __future__ import annotations

import json
import random
import shutil
import tempfile
import time
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from leafe_recipe.envs.base import Task, get_family
from leafe_recipe.envs.sokoban import ACTIONS, RENDER, fatal_step, first_mistake, grid_after, hint, optimal_moves, parse_action, sokoban_tasks
from leafe_recipe.prompts import Message, build_messages, build_reflection
from leafe_recipe.tiny import CHAT_TEMPLATE, SPECIAL_TOKENS


@dataclass(frozen=True)
class MicroConfig:
    """Everything the micro model is built from (each value this project's choice)."""

    rooms: int = 600  # train rooms whose episodes make the data
    optimal_share: float = 0.4  # the solver's move this often, else a random one: how well it plays (builds
    # measured in docs/micro_model.md: 0.4 and 0.7 sometimes learned nothing in 400-800 steps; 0.8 for 2 epochs: Pass@1 42%)
    hint_follow_share: float = 0.95  # a hinted answer is the hinted move this often
    reflection_label_share: float = 0.7  # a reflection names the first mistake this often, else a random step
    reflect_every: int = 4  # live episodes are reflected on at these step counts (as LEAFE's K)
    hinted_branches: int = 2  # per episode: branches from its mistakes with the fix as a hint (the first mistake's first)
    hint_repeats: int = 3  # the examples where a hint is read (a branch's first step) or ignored (its second) appear this
    # often: reading a hint is learned after playing, and more epochs would also make the player stronger
    vocab_size: int = 1024
    hidden_size: int = 128
    layers: int = 4
    heads: int = 4
    learning_rate: float = 2e-3
    epochs: int = 3  # fewer steps sometimes learned nothing: the loss plateaus at uniform moves, then drops
    batch_size: int = 16  # small batches, many optimizer steps: CPU time per example is the same
    micro_batch_size: int = 16  # per forward/backward: larger ones are slower per example on CPU
    max_len: int = 1536  # the longest reflection prompt and its answer, untruncated
    seed: int = 0


def sokoban_settings() -> dict[str, Any]:
    """The rooms, episode length and prompt protocol it learns and is measured with: the Sokoban
    env config (hydra_conf/env/sokoban.yaml) at scale=micro (hydra_conf/env_scale/sokoban_micro.yaml),
    the one source the study and the model share."""
    from omegaconf import OmegaConf

    from leafe_recipe import CONF_DIR

    study = OmegaConf.load(CONF_DIR / "env_scale" / "sokoban_micro.yaml")
    env = OmegaConf.to_container(OmegaConf.merge(OmegaConf.load(CONF_DIR / "env" / "sokoban.yaml"), study), resolve=True)
    return {"tasks": env["tasks"], "max_steps": env["kwargs"]["max_steps"], "history_window": env["history_window"],
            "max_new_tokens": env["max_new_tokens"]}  # fmt: skip


def build_rooms(config: MicroConfig) -> list[Task]:
    """The rooms it learns from: the build split (never a train, validation or test room)."""
    return sokoban_tasks("build", config.rooms, **sokoban_settings()["tasks"])


def manifest(config: MicroConfig = MicroConfig()):
    """What the micro model learns from and the prompt protocol it is built for (leafe_recipe/manifest.py),
    without building it: runs that start from it use that protocol."""
    from leafe_recipe.manifest import Manifest, learned

    s = sokoban_settings()
    prompt = {"history_window": s["history_window"], "max_new_tokens": s["max_new_tokens"], "env": "sokoban"}
    return Manifest(prompt=prompt, learned_from=learned(get_family("sokoban"), build_rooms(config), "micro build"), lineage=["micro build"])


# --------------------------------------------------------------------------- #
# Data from the solver
# --------------------------------------------------------------------------- #


def _noisy_episode(task: Task, rng: random.Random, config: MicroConfig, prefix: list[str] | None = None,
                   experience: str | None = None) -> tuple[list[str], list[str], list[tuple[list[Message], str]]]:  # fmt: skip
    """Play the noisy solver from `prefix` (replayed) to the end: observations, actions and the
    play examples of its own steps (the first one answered with the hinted move when hinted)."""
    family = get_family("sokoban")
    settings = sokoban_settings()
    env = family.make(max_steps=settings["max_steps"])
    observations, actions = [env.reset(task)], []
    for a in prefix or []:
        observations.append(env.step(a).observation)
        actions.append(a)
    examples = []
    hinted = experience is not None
    while True:
        grid = grid_after(task.data["grid"], actions)
        best = sorted(optimal_moves(grid))
        if hinted and len(actions) == len(prefix or []):
            move = parse_action(experience.split(", move ")[1]) if rng.random() < config.hint_follow_share else rng.choice(ACTIONS)
        elif best and rng.random() < config.optimal_share:
            move = rng.choice(best)
        else:
            move = rng.choice(ACTIONS)
        answer = f"Action: {move}"
        examples.append((build_messages(family.system_prompt, observations, actions, settings["history_window"], experience), answer))
        step = env.step(answer)
        actions.append(answer)
        observations.append(step.observation)
        if step.done:
            return observations, actions, examples


def _reflection_answer(task: Task, actions: list[str], finished: bool, rng: random.Random, config: MicroConfig) -> str:
    mistake = first_mistake(task.data["grid"], actions)
    if mistake is None:
        if not finished:
            return "Rollback step: none\nExperience: The attempt is on track."
        mistake = (rng.randint(1, len(actions)), sorted(optimal_moves(task.data["grid"])) or ["up"])
        mistake = (mistake[0], mistake[1][0])
    step, move = mistake
    if rng.random() >= config.reflection_label_share:
        step = rng.randint(1, len(actions))
        best = sorted(optimal_moves(grid_after(task.data["grid"], actions[: step - 1]))) or list(ACTIONS)
        move = rng.choice(best)
    return f"Rollback step: {step}\nExperience: {hint(step, move, parse_action(actions[step - 1]))}"


def make_examples(config: MicroConfig) -> list[tuple[list[Message], str]]:
    """(prompt messages, answer) pairs: play, hinted branches and reflections (module docstring)."""
    rng = random.Random(config.seed)
    tasks = build_rooms(config)
    system, window = get_family("sokoban").system_prompt, sokoban_settings()["history_window"]
    examples: list[tuple[list[Message], str]] = []
    for task in tasks:
        grid = task.data["grid"]
        observations, actions, played = _noisy_episode(task, rng, config)
        examples += played
        for t in range(config.reflect_every, len(actions), config.reflect_every):
            examples.append((build_reflection(observations[: t + 1], actions[:t], finished=False),
                             _reflection_answer(task, actions[:t], False, rng, config)))  # fmt: skip
        if "solved" not in observations[-1]:
            examples.append((build_reflection(observations, actions, finished=True), _reflection_answer(task, actions, True, rng, config)))
        # hinted branches at mistakes (a move off every shortest plan while the room was still solvable):
        # the first, where LEAFE's reflection should roll back to, and `hinted_branches - 1` others.
        mistakes = {t: sorted(best) for t in range(1, len(actions) + 1)
                    if (best := optimal_moves(grid_after(grid, actions[: t - 1]))) and parse_action(actions[t - 1]) not in best}  # fmt: skip
        steps = list(mistakes)
        # A branch follows a solver's move, the hint staying in the prompt as in LEAFE's branches; where it
        # opens, hints naming each other move too (hints naming solver moves only are redundant with the
        # room and were never read: +0.0 points, docs/micro_model.md), and each of those at the next step,
        # where it no longer applies (without these the model repeated the hinted move there).
        others = rng.sample(steps[1:], min(len(steps[1:]), config.hinted_branches - 1))
        for t in steps[:1] + sorted(others):
            wrong, move = parse_action(actions[t - 1]), rng.choice(mistakes[t])
            seen, done, played = _noisy_episode(task, rng, config, prefix=actions[: t - 1], experience=hint(t, move, wrong))
            read = played[:2]  # the hinted step and the one after, where the hint no longer applies
            for other in (a for a in ACTIONS if a not in (wrong, move)):
                answer = other if rng.random() < config.hint_follow_share else rng.choice(ACTIONS)
                read.append((build_messages(system, observations[:t], actions[: t - 1], window, hint(t, other, wrong)), f"Action: {answer}"))
                if len(done) > t:  # answered as without the hint
                    read.append((build_messages(system, seen[: t + 1], done[:t], window, hint(t, other, wrong)), done[t]))
            examples += read * config.hint_repeats + played[2:]
    return examples



# --------------------------------------------------------------------------- #
# Tokenizer, network, training
# --------------------------------------------------------------------------- #


def train_tokenizer(texts: list[str], vocab_size: int):
    """Byte-level BPE whose merges may span spaces but not line ends, so the environment's fixed
    phrases become few tokens and a line end (where the assistant's answer starts) is always a
    token boundary: a prompt tokenises the same alone and with its answer. Every digit is its own
    token, so "This is step 5." and a hint's "At step 5," share the 5 (merged into the phrases,
    the model must learn which of two token sets match, and the hinted move was repeated a step
    late). Room rows are whole tokens (`room_rows`)."""
    from tokenizers import Regex, Tokenizer, decoders, models, pre_tokenizers, trainers
    from transformers import PreTrainedTokenizerFast

    backend = Tokenizer(models.BPE())
    backend.pre_tokenizer = pre_tokenizers.Sequence([
        pre_tokenizers.Split(Regex("\n"), behavior="merged_with_previous"),
        pre_tokenizers.Digits(individual_digits=True),
        pre_tokenizers.ByteLevel(add_prefix_space=False, use_regex=False),
    ])  # fmt: skip
    backend.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(
        vocab_size=vocab_size, special_tokens=SPECIAL_TOKENS, initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
        show_progress=False,
    )  # fmt: skip
    backend.train_from_iterator(texts, trainer)
    tokenizer = PreTrainedTokenizerFast(
        tokenizer_object=backend, eos_token="<|im_end|>", pad_token="<|endoftext|>", additional_special_tokens=SPECIAL_TOKENS[1:2],
        chat_template=CHAT_TEMPLATE, padding_side="left", model_max_length=4096,
    )  # fmt: skip
    tokenizer.add_tokens(room_rows(sokoban_settings()["tasks"]["dim"][1]))
    return tokenizer


def room_rows(width: int) -> list[str]:
    """Every row a room of this width can show, with its line end: one token each. Read cell by
    cell (a token per symbol) a 0.7M model did not learn to play in 1000 steps (docs/micro_model.md);
    read row by row, where the player, box and target stand within a row is in the row's
    embedding and the rows above and below are the neighbouring tokens."""
    from itertools import product

    symbols = sorted(set(RENDER.values()))
    return ["#" * width + "\n"] + ["#" + "".join(cells) + "#\n" for cells in product(symbols, repeat=width - 2)]


COMMITTED = Path(__file__).resolve().parent / "micro_model"  # the build this repository ships (`make micro` remakes it)


def build_version(config: MicroConfig = MicroConfig()) -> tuple[str, list | None]:
    """The build key of this recipe (models.build_key: its examples, settings and library versions),
    and the examples when they had to be made to know it (None when a shortcut knew the key)."""
    from leafe_recipe.models import build_key, known_key

    settings = {"config": asdict(config), "sokoban": sokoban_settings()}
    here = Path(__file__).resolve().parent
    version, record = known_key("micro", settings, [here / "micro.py", here / "prompts.py", here / "envs" / "sokoban.py"])
    if version is not None:
        return version, None
    examples = make_examples(config)
    version = build_key(examples, settings)
    record(version)
    return version, examples


def build(directory: Path | None = None, config: MicroConfig = MicroConfig(), measure_it: bool = True) -> Path:
    """The micro model's directory: the committed build when its key is this recipe's, else one
    built once into the cache (or `directory`), which prints what it can do."""
    from leafe_recipe import cache_dir
    from leafe_recipe.manifest import read

    start = time.monotonic()
    version, examples = build_version(config)
    if directory is None and (shipped := read(COMMITTED)) is not None and shipped.identity == version:
        return COMMITTED
    target = Path(directory) if directory else cache_dir() / f"micro-qwen3-{version}"
    if (target / "config.json").exists():
        return target
    examples = examples or make_examples(config)
    print(f"[micro] building the micro model into {target} (minutes on 2 cores, once)", flush=True)
    target.parent.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(prefix=".micro-", dir=target.parent))
    trained = _train(examples, config, staging)
    build_s = time.monotonic() - start
    report = {"build_key": version, "config": asdict(config), "examples": len(examples), "build_seconds": round(build_s)}
    if measure_it:
        report["abilities"] = measure(str(trained))
    (trained / "micro_build.json").write_text(json.dumps(report, indent=2))
    from leafe_recipe.manifest import write

    made = manifest(config)
    made.identity = version
    write(trained, made)
    try:
        trained.rename(target)  # atomic: a concurrent builder either wins or finds it done
    except OSError:
        pass
    shutil.rmtree(staging, ignore_errors=True)
    print(f"[micro] built in {build_s:.0f} s (measuring took {time.monotonic() - start - build_s:.0f} s): {target}", flush=True)
    return target


def _train(examples: list[tuple[list[Message], str]], config: MicroConfig, staging: Path) -> Path:
    """Its tokenizer, a randomly initialised Qwen3 and the OpenRLHF SFT launch on the examples."""
    import jinja2
    import torch
    from transformers import AutoTokenizer, Qwen3Config, Qwen3ForCausalLM

    from leafe_recipe.records import write_jsonl
    from leafe_recipe.train import SFTConfig, sft_defaults, train

    sample = random.Random(config.seed).sample(examples, min(len(examples), 2000))
    template = jinja2.Template(CHAT_TEMPLATE)
    texts = [template.render(messages=m + [{"role": "assistant", "content": a}], add_generation_prompt=False) for m, a in sample]
    trained_tokenizer = train_tokenizer(texts, config.vocab_size)
    # Qwen3, not Qwen2: transformers 5 loads a qwen2 checkpoint's tokenizer as Qwen2Tokenizer whatever
    # its tokenizer_config says, which splits text into words first: merges spanning spaces never
    # apply and every prompt is about 4.5x longer (the build at 9ed88af trained on those)
    model_config = Qwen3Config(
        vocab_size=len(trained_tokenizer), hidden_size=config.hidden_size, intermediate_size=2 * config.hidden_size,
        num_hidden_layers=config.layers, num_attention_heads=config.heads, num_key_value_heads=max(1, config.heads // 2),
        head_dim=config.hidden_size // config.heads, max_position_embeddings=4096, tie_word_embeddings=True,
        bos_token_id=trained_tokenizer.convert_tokens_to_ids("<|im_start|>"), eos_token_id=trained_tokenizer.eos_token_id,
        pad_token_id=trained_tokenizer.pad_token_id,
    )  # fmt: skip
    torch.manual_seed(config.seed)
    model = Qwen3ForCausalLM(model_config)
    model.generation_config.eos_token_id = trained_tokenizer.eos_token_id
    model.generation_config.pad_token_id = trained_tokenizer.pad_token_id
    init = staging / "init"
    model.save_pretrained(init)
    trained_tokenizer.save_pretrained(init)
    tokenizer = AutoTokenizer.from_pretrained(init)  # as OpenRLHF, lm-eval and the policies load it
    if (loaded := tokenizer(texts[0])["input_ids"]) != (made := trained_tokenizer(texts[0])["input_ids"]):
        raise RuntimeError(f"the micro tokenizer saved in {init} loads back as {type(tokenizer).__name__}, which "
                           f"tokenises a training text into {len(loaded)} tokens, not {len(made)}")  # fmt: skip
    data = staging / "data.jsonl"
    write_jsonl(data, [{"prompt": m, "response": [{"role": "assistant", "content": a}]} for m, a in examples])
    lengths = [len(tokenizer(tokenizer.apply_chat_template(m, add_generation_prompt=True, tokenize=False))["input_ids"]) for m, _ in examples]
    print(f"[micro] {len(examples)} examples from {config.rooms} rooms; tokenizer of {len(tokenizer)} tokens, prompts "
          f"{min(lengths)}-{max(lengths)} tokens (mean {sum(lengths) / len(lengths):.0f}); "
          f"{sum(p.numel() for p in model.parameters()) / 1e6:.2f}M parameters", flush=True)  # fmt: skip
    return train(SFTConfig(**{
        **sft_defaults(), "model": str(init), "datasets": [str(data)], "output_dir": str(staging / "model"), "zero_stage": 0,
        "learning_rate": config.learning_rate, "epochs": config.epochs, "train_batch_size": config.batch_size,
        "micro_train_batch_size": config.micro_batch_size, "max_len": config.max_len, "seed": config.seed,
    }))  # fmt: skip


# --------------------------------------------------------------------------- #
# What it can do
# --------------------------------------------------------------------------- #


def measure(model: str, rooms: int = 100, samples: int = 8, hint_samples: int = 8, seed: int = 0, resamples: int = 2000) -> dict[str, Any]:
    """The micro model's three abilities on rooms it never saw (the Sokoban validation split: build
    choices are made on these, never on test), printed:

    - play: Pass@k over `samples` episodes per room, beside a uniformly random walker's success;
    - following a hint: from each room's first failed episode, rolled back to its first
      mistake, `hint_samples` continuations with the correct hint in the prompt (LEAFE's
      experience format) and as many without; the success rates, paired over rooms, and how
      often the hinted move is taken at that step (whether the hint is read at all);
    - reflection: on its failed episodes, the reflection prompt (LEAFE's, sampled as LEAFE
      samples it), parsed; where the solver labels a fatal step, how often the rollback step
      is at or before it, against a uniformly random step (mean fatal/t); and how often it is
      the first mistake exactly, against 1/t.
    """
    from leafe_recipe.passk import ks_up_to, mean_pass_at_k
    from leafe_recipe.policy import Sampling
    from leafe_recipe.policy.hf import HFPolicy
    from leafe_recipe.rollout import run_episodes

    family, settings = get_family("sokoban"), sokoban_settings()
    kwargs, window = {"max_steps": settings["max_steps"]}, settings["history_window"]
    policy = HFPolicy(model)
    act = Sampling(temperature=1.0, top_p=1.0, top_k=0, max_new_tokens=settings["max_new_tokens"], stop=(), seed=seed)
    tasks = family.tasks("validation", rooms, **settings["tasks"])
    start = time.monotonic()
    by_task: dict[str, list] = {}
    for ep in run_episodes([(t, s) for t in tasks for s in range(samples)], family, kwargs, policy, act, window):
        by_task.setdefault(ep.task.id, []).append(ep)
    n = [len(v) for v in by_task.values()]
    c = [sum(e.success for e in v) for v in by_task.values()]
    failed = [sorted((e for e in v if not e.success), key=lambda e: e.sample) for v in by_task.values()]
    out = {
        "rooms": rooms, "samples": samples, "pass_at_k": {str(k): v for k, v in mean_pass_at_k(n, c, ks_up_to(samples)).items()},
        "random_walker": random_walker_success(tasks, samples, seed),
        "follow_hint": _follow_hint(failed, policy, act, window, hint_samples, seed, resamples),
        "reflection": _reflection(failed, policy, seed),
    }  # fmt: skip
    out["seconds"] = round(time.monotonic() - start)
    print(report_lines(out), flush=True)
    return out


def _follow_hint(failed: list[list], policy, act, window: int | None, hint_samples: int, seed: int, resamples: int) -> dict[str, Any]:
    """Success from each room's first failed attempt's first mistake, with and without the correct hint."""
    import numpy as np

    from leafe_recipe.rollout import Start, run_episodes
    from leafe_recipe.stats import bootstrap_means, interval

    family, kwargs = get_family("sokoban"), {"max_steps": sokoban_settings()["max_steps"]}
    branch_points = []
    for eps in failed:
        for ep in eps:
            if (mistake := first_mistake(ep.task.data["grid"], ep.actions)) is not None:
                step, move = mistake
                branch_points.append((ep, step, move, hint(step, move, parse_action(ep.actions[step - 1]))))
                break
    starts = [Start(ep.task, 2 * i + h, tuple(ep.actions[: step - 1]), text if h else None)
              for ep, step, _, text in branch_points for i in range(hint_samples) for h in (0, 1)]  # fmt: skip
    hinted = {ep.task.id: (step, move) for ep, step, move, _ in branch_points}
    wins: dict[tuple[str, bool], list[bool]] = {}
    took: dict[bool, list[bool]] = {True: [], False: []}  # the hinted move at the hinted step: is the hint read at all?
    for ep in run_episodes(starts, family, kwargs, policy, act, window):
        wins.setdefault((ep.task.id, ep.experience is not None), []).append(ep.success)
        step, move = hinted[ep.task.id]
        took[ep.experience is not None].append(parse_action(ep.actions[step - 1]) == move)
    follow: dict[str, Any] = {"branch_points": len(branch_points), "with_hint": None, "without_hint": None, "difference": None, "ci95": None,
                              "hinted_move_with_hint": None, "hinted_move_without_hint": None}  # fmt: skip
    if branch_points:  # none when every attempt succeeded
        rates = np.array([[np.mean(wins[(ep.task.id, True)]), np.mean(wins[(ep.task.id, False)])] for ep, *_ in branch_points])
        diff = rates[:, :1] - rates[:, 1:]
        low, high = interval(bootstrap_means(diff, resamples, seed), 0.95)
        follow |= {"with_hint": float(rates[:, 0].mean()), "without_hint": float(rates[:, 1].mean()),
                   "difference": float(diff.mean()), "ci95": [float(low[0]), float(high[0])],
                   "hinted_move_with_hint": float(np.mean(took[True])), "hinted_move_without_hint": float(np.mean(took[False]))}  # fmt: skip
    return follow


def _reflection(failed: list[list], policy, seed: int) -> dict[str, Any]:
    """Where its reflections on its own failed attempts roll back, against a uniformly random step."""
    import numpy as np

    from leafe_recipe.policy import Sampling
    from leafe_recipe.prompts import parse_reflection

    reflect_on = [ep for eps in failed for ep in eps[:2]]
    reflect = Sampling(temperature=0.7, top_p=1.0, top_k=0, max_new_tokens=64, stop=(), seed=seed)
    texts = policy.generate([build_reflection(ep.observations, ep.actions, finished=True) for ep in reflect_on],
                            [reflect.for_request("reflect", ep.task.id, ep.sample) for ep in reflect_on])  # fmt: skip
    parsed, graded, first = 0, [], []
    for ep, out in zip(reflect_on, texts):
        r = parse_reflection(out.text, len(ep.actions))
        parsed += r.parsed
        if r.tau is None:
            continue
        t = len(ep.actions)
        if (fatal := fatal_step(ep.task.data["grid"], ep.actions)) is not None:
            graded.append((r.tau <= fatal, fatal / t))
        if (mistake := first_mistake(ep.task.data["grid"], ep.actions)) is not None:
            first.append((r.tau == mistake[0], 1 / t))
    mean = lambda xs, i: float(np.mean([x[i] for x in xs])) if xs else None  # noqa: E731
    return {"reflections": len(reflect_on), "parsed": parsed / len(reflect_on) if reflect_on else None, "graded": len(graded),
            "at_or_before_fatal": mean(graded, 0), "uniform_at_or_before_fatal": mean(graded, 1),
            "first_mistake_exact": mean(first, 0), "uniform_first_mistake_exact": mean(first, 1)}  # fmt: skip


def random_walker_success(tasks: list[Task], samples: int, seed: int) -> float:
    """Success of uniformly random moves on the same rooms: the Pass@1 that means no skill."""
    family, rng, wins = get_family("sokoban"), random.Random(seed), 0
    env = family.make(max_steps=sokoban_settings()["max_steps"])
    for task in tasks:
        for _ in range(samples):
            env.reset(task)
            while not (step := env.step(f"Action: {rng.choice(ACTIONS)}")).done:
                pass
            wins += step.success
    return wins / (len(tasks) * samples)


def _pct(x: float | None) -> str:
    return "n/a" if x is None else f"{100 * x:.1f}%"


def report_lines(m: dict[str, Any]) -> str:
    pct = _pct
    f, r = m["follow_hint"], m["reflection"]
    effect = ("n/a" if f["difference"] is None else
              f"{100 * f['difference']:+.1f} points [{100 * f['ci95'][0]:+.1f}, {100 * f['ci95'][1]:+.1f}] (95% CI, paired over attempts)")  # fmt: skip
    passk = ", ".join(f"Pass@{k} {100 * v:.1f}" for k, v in m["pass_at_k"].items())
    return "\n".join([
        f"[micro] play ({m['rooms']} validation rooms x {m['samples']} samples): {passk} (uniformly random moves: Pass@1 {pct(m['random_walker'])})",
        f"[micro] follows a hint: from {f['branch_points']} failed attempts' first mistake, success {pct(f['with_hint'])} with the "
        f"correct hint vs {pct(f['without_hint'])} without: {effect}; the hinted move taken at the hinted step "
        f"{pct(f['hinted_move_with_hint'])} with the hint vs {pct(f['hinted_move_without_hint'])} without",
        f"[micro] reflects: {pct(r['parsed'])} of {r['reflections']} reflections parsed; rollback at or before the fatal step "
        f"{pct(r['at_or_before_fatal'])} (uniform random step: {pct(r['uniform_at_or_before_fatal'])}, {r['graded']} graded); "
        f"exactly the first mistake {pct(r['first_mistake_exact'])} (uniform: {pct(r['uniform_first_mistake_exact'])})",
    ])  # fmt: skip


def commit(path: Path) -> None:
    """Ship a build in the repository (COMMITTED): what `make micro` does after building."""
    shutil.rmtree(COMMITTED, ignore_errors=True)
    shutil.copytree(path, COMMITTED, ignore=shutil.ignore_patterns("train.log", "*.key.json", ".complete*"))
    print(f"[micro] {path} copied to {COMMITTED}", flush=True)


if __name__ == "__main__":
    # python -m leafe_recipe.micro [--commit]: build (once) and print what the micro model can do;
    # --commit builds into the cache even where the shipped build is current, and ships the result
    import sys

    path = build(Path(tempfile.mkdtemp(prefix="micro-")) / "model") if "--commit" in sys.argv else build()
    print(report_lines(json.loads((path / "micro_build.json").read_text())["abilities"]))
    if "--commit" in sys.argv:
        commit(path)
