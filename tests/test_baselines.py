"""The baselines: imitation, Early Experience (IWM, SR) and GRPO (TRL on CPU, OpenRLHF's command
and agent), and that each training method learns what it should on a task the tiny model can
learn within a minute (tests/choice.py: one move, only 'up' wins; the tiny model starts below
half)."""

import asyncio
import json
from pathlib import Path
from types import SimpleNamespace

import pytest
from omegaconf import OmegaConf

from choice import FAMILY as CHOICE
from helpers import sft_config
from leafe_recipe.envs.base import get_family, replay
from leafe_recipe.envs.pool import expert_trajectory
from leafe_recipe.manifest import Manifest
from leafe_recipe.policy import Completion, Sampling
from leafe_recipe.prompts import build_messages
from leafe_recipe.records import write_jsonl
from leafe_recipe.rollout import run_episodes
from leafe_recipe.train import train_checkpoint

SOKOBAN = get_family("sokoban")
TRAIN = CHOICE.tasks("train", 16)


def success_rate(model: str, n: int = 64) -> float:
    from leafe_recipe.policy.hf import HFPolicy

    starts = [(t, s) for t in CHOICE.tasks("test", 8) for s in range(n // 8)]
    episodes = list(run_episodes(starts, CHOICE, {}, HFPolicy(model), Sampling(max_new_tokens=32, seed=1), None))
    return sum(e.success for e in episodes) / len(episodes)


PROMPT = {"history_window": 2, "max_new_tokens": 32, "env": "choice"}


def trained(cfg) -> Path:
    """train_checkpoint as a method calls it (its manifest says only the prompt protocol here)."""
    return train_checkpoint(cfg, PROMPT, lambda key: Manifest(prompt=PROMPT, identity=str(key)))[0]


def sft(model: str, files: list[Path], out: Path, **overrides):
    settings = dict(learning_rate=1e-3, epochs=2, train_batch_size=4, micro_train_batch_size=4, max_len=4096, zero_stage=0)
    return sft_config(model=model, datasets=[str(f) for f in files], output_dir=str(out), **{**settings, **overrides})


@pytest.fixture(scope="module")
def base_rate(tiny_model):
    return success_rate(tiny_model)


# --- expert trajectories ------------------------------------------------------------------


def test_the_sokoban_expert_solves_every_room_and_coding_experts_are_reference_solutions():
    for task in SOKOBAN.tasks("train", 20):
        observations, actions = expert_trajectory(SOKOBAN, {"max_steps": 12}, task)
        assert len(actions) == task.data["optimal_len"] and "All boxes are on targets" in observations[-1]
        assert all(a.startswith("Thought: ") and "\nAction: " in a for a in actions)
    code = get_family("humaneval")
    task = code.tasks("test", 1)[0]
    observations, actions = expert_trajectory(code, {"max_turns": 1}, task)
    assert len(actions) == 1 and "accepted" in observations[-1]


# --- imitation ----------------------------------------------------------------------------


@pytest.mark.slow
def test_imitation_reaches_the_experts_choice(tiny_model, base_rate, tmp_path):
    from baselines.imitation import expert_records, expert_trajectories

    records = expert_records(CHOICE.system_prompt, expert_trajectories(CHOICE, {}, TRAIN), 2)
    assert [r["response"][0]["content"] for r in records] == ["Action: up"] * 16
    write_jsonl(tmp_path / "expert.jsonl", records)
    checkpoint = trained(sft(tiny_model, [tmp_path / "expert.jsonl"], tmp_path / "ck"))
    assert base_rate < 0.5 and success_rate(str(checkpoint)) >= 0.75  # the expert's choice, most of the time


def test_the_expert_answers_in_the_format_of_the_model_that_learns_from_it(tmp_path):
    """The micro study's imitation and Early Experience learn the micro model's own answers ("Action: <move>")."""
    from helpers import context

    ctx = context(tmp_path, "experiment=micro_sokoban", "method=imitation")
    room = SOKOBAN.tasks("train", 1)[0]
    _, actions = expert_trajectory(SOKOBAN, ctx.env_kwargs, room, ctx.expert)
    assert actions and all(a in {f"Action: {m}" for m in ("up", "down", "left", "right")} for a in actions)
    assert expert_trajectory(SOKOBAN, {"max_steps": 20}, room)[1][0].startswith("Thought: ")  # sokoban.yaml's ReAct answer


# --- Early Experience ---------------------------------------------------------------------


def states(tasks=TRAIN):
    from baselines.early_experience import expert_states
    from baselines.imitation import expert_trajectories

    return expert_states(expert_trajectories(CHOICE, {}, tasks))


class Proposer:
    """Proposes the moves in order (the expert's 'up' first, and a duplicate), and reflects as told."""

    def __init__(self, reflections=()):
        self.reflections = list(reflections)

    def generate(self, conversations, sampling):
        if "expert action" in conversations[0][-1]["content"]:
            return [Completion(self.reflections.pop(0), 3, False) for _ in conversations]
        moves = ["up", "down", "down", "left", "right"]
        return [Completion(f"Action: {moves[i % 5]}", 3, False) for i in range(len(conversations))]


def test_alternatives_differ_from_the_expert_and_stay_within_the_budget():
    from baselines.early_experience import Ledger, alternatives

    for source in ("valid", "policy"):
        found, ledger = states(TRAIN[:2]), Ledger()
        alternatives(found, CHOICE, {}, 3, source, 100, lambda: Proposer(), Sampling(), 2, 0, ledger)
        for s in found:
            assert len(s.alternatives) == 3 and all("up" not in a for a, _ in s.alternatives)
            assert len({a for a, _ in s.alternatives}) == 3 and all(o == "You lose." for _, o in s.alternatives)
        assert ledger.env_steps == 6
    sokoban_states = []
    from baselines.early_experience import expert_states

    room = SOKOBAN.tasks("train", 1)[0]
    sokoban_states = expert_states([(room, *expert_trajectory(SOKOBAN, {"max_steps": 12}, room))])
    ledger = Ledger()
    alternatives(sokoban_states, SOKOBAN, {"max_steps": 12}, 3, "valid", 10, None, Sampling(), 2, 0, ledger)
    assert ledger.env_steps + ledger.replay_steps <= 10  # replaying the expert's prefix is charged too
    assert ledger.replay_steps > 0


def test_self_reflection_keeps_only_rationales_that_conclude_with_the_experts_action():
    from baselines.early_experience import Ledger, alternatives, self_reflection

    found = states(TRAIN[:3])
    alternatives(found, CHOICE, {}, 2, "valid", 100, None, Sampling(), 2, 0, Ledger())
    policy = Proposer(["Going up opens the door; the others stay locked.\nAction: up", "Action: left", ""])
    data, stats = self_reflection.records(CHOICE, found, 2, policy, Sampling(), Ledger())
    assert stats == {"reflections": 3, "kept": 1, "dropped_other_conclusion": 1, "dropped_empty": 1}
    assert data[0]["response"][0]["content"] == "Going up opens the door; the others stay locked.\nAction: up\nAction: up"
    assert data[0]["prompt"] == build_messages(CHOICE.system_prompt, found[0].observations[:1], [], 2)
    prompt = self_reflection.prompt(found[0], 2)[1]["content"]
    assert "Expert action:\nAction: up" in prompt and "Alternative 2:" in prompt and "You lose." in prompt


def test_world_model_records_predict_the_next_observation_of_every_action():
    from baselines.early_experience import Ledger, alternatives, world_model

    found = states(TRAIN[:2])
    alternatives(found, CHOICE, {}, 3, "valid", 100, None, Sampling(), 2, 0, Ledger())
    records = world_model.records(CHOICE.system_prompt, found, 2)
    assert len(records) == 2 * 4  # the expert's transition and 3 alternatives per state
    assert {r["response"][0]["content"] for r in records} == {"You win.", "You lose."}
    assert records[0]["prompt"][-1]["content"].endswith("Proposed action:\nAction: up\n\nPredict the environment's response.")
    assert records[0]["prompt"][0]["content"].startswith(world_model.WORLD_MODEL_SYSTEM)


def test_the_imitation_stage_after_world_modelling_fills_the_imitation_budget(tiny_model, tmp_path):
    from baselines.early_experience.world_model import imitation_epochs

    record = {"prompt": [{"role": "user", "content": "x"}], "response": [{"role": "assistant", "content": "y"}]}
    write_jsonl(tmp_path / "wm.jsonl", [record] * 64)
    write_jsonl(tmp_path / "il.jsonl", [record] * 32)
    wm = sft_config(model=tiny_model, datasets=[str(tmp_path / "wm.jsonl")], output_dir="o", epochs=1, train_batch_size=16)
    il = sft_config(model=tiny_model, datasets=[str(tmp_path / "il.jsonl")], output_dir="o", epochs=4, train_batch_size=16)
    assert imitation_epochs(wm, il) == 2  # 4 x 2 imitation updates = 4 world-model updates + 2 x 2
    il.epochs = 1
    assert imitation_epochs(wm, il) == 1  # at least one


@pytest.mark.slow
@pytest.mark.parametrize("variant", ["iwm", "sr"])
def test_early_experience_reaches_the_experts_choice(variant, tiny_model, base_rate, tmp_path):
    from baselines.early_experience import Ledger, alternatives, self_reflection, world_model
    from baselines.imitation import expert_records, expert_trajectories
    from leafe_recipe.policy.hf import HFPolicy

    found = states()
    alternatives(found, CHOICE, {}, 3, "valid", 100, None, Sampling(), 2, 0, Ledger())
    write_jsonl(tmp_path / "expert.jsonl", expert_records(CHOICE.system_prompt, expert_trajectories(CHOICE, {}, TRAIN), 2))
    if variant == "iwm":
        write_jsonl(tmp_path / "wm.jsonl", world_model.records(CHOICE.system_prompt, found, 2))
        world = trained(sft(tiny_model, [tmp_path / "wm.jsonl"], tmp_path / "wm", epochs=1))
        checkpoint = trained(sft(str(world), [tmp_path / "expert.jsonl"], tmp_path / "ck"))
    else:
        data, stats = self_reflection.records(CHOICE, found, 2, HFPolicy(tiny_model), Sampling(max_new_tokens=64), Ledger())
        assert stats["reflections"] == 16
        files = [tmp_path / "expert.jsonl"]
        if data:
            write_jsonl(tmp_path / "sr.jsonl", data)
            files.append(tmp_path / "sr.jsonl")
        checkpoint = trained(sft(tiny_model, files, tmp_path / "ck"))
    assert base_rate < 0.5 and success_rate(str(checkpoint)) >= 0.75  # the expert's choice, most of the time


# --- GRPO ---------------------------------------------------------------------------------

GRPO = dict(group_size=8, prompts_per_step=4, passes=10, learning_rate=1e-3, kl_coef=0.0, temperature=1.0,
            max_length=1024, max_new_tokens=32, invalid_penalty=0.1, seed=0)  # fmt: skip


def ledger():
    return {"env_steps": 0, "replay_steps": 0, "model_calls": 0, "gen_tokens": 0, "episodes": 0, "successes": 0}


@pytest.mark.slow
def test_grpo_with_trl_raises_the_success_rate(tiny_model, base_rate, tmp_path):
    from baselines.grpo import trl_engine

    spent = ledger()
    checkpoint = trl_engine.train(GRPO, tiny_model, CHOICE, {}, CHOICE.tasks("train", 8), tmp_path / "ck", spent)
    assert spent["episodes"] == 10 * 8 * 8 and spent["env_steps"] == spent["episodes"]  # one step each
    assert success_rate(str(checkpoint)) >= base_rate + 0.3


def evaluation_prompt_ids(tokenizer, observations, actions):
    """What leafe-agent (HFPolicy) feeds the model at the step after `actions`: the whole history."""
    text = tokenizer.apply_chat_template(build_messages(SOKOBAN.system_prompt, observations, actions, None), add_generation_prompt=True, tokenize=False)
    return tokenizer(text, add_special_tokens=False)["input_ids"]


def test_trl_episodes_train_on_the_evaluation_prompt_of_every_step_token_for_token(tiny_model):
    from transformers import AutoModelForCausalLM, AutoTokenizer

    from baselines.grpo import trl_engine

    tokenizer = AutoTokenizer.from_pretrained(tiny_model)
    model = AutoModelForCausalLM.from_pretrained(tiny_model)
    g = {**GRPO, "max_new_tokens": 16, "max_length": 8192}
    episodes = trl_engine.play(model, tokenizer, SOKOBAN, {"max_steps": 4}, SOKOBAN.tasks("train", 3), g, ledger())
    for e in episodes:
        assert len(e.actions) == 4 and len(e.mask) == len(e.logprobs) == len(e.ids) - e.prompt_len
        position = e.prompt_len
        for t in range(len(e.actions)):
            prompt = evaluation_prompt_ids(tokenizer, e.observations[: t + 1], e.actions[:t])
            assert e.ids[:position] == prompt, f"step {t + 1}"
            n = next(i for i, m in enumerate(e.mask[position - e.prompt_len :]) if m == 0) if t < 3 else len(e.ids) - position
            assert tokenizer.decode(e.ids[position : position + n], skip_special_tokens=True) == e.actions[t]
            position += n
            while position < len(e.ids) and e.mask[position - e.prompt_len] == 0:
                position += 1  # the environment's tokens: masked out of the loss


class TinyEngine:
    """A stand-in for OpenRLHF's vLLM rollout actor: `generate(ids, params)` samples with the tiny model."""

    def __init__(self, path):
        from transformers import AutoModelForCausalLM, AutoTokenizer

        self.model, self.tokenizer = AutoModelForCausalLM.from_pretrained(path), AutoTokenizer.from_pretrained(path)

    async def generate(self, ids, params, multi_modal_data=None):
        import torch

        out = self.model.generate(torch.tensor([ids]), max_new_tokens=params.max_tokens, do_sample=True, top_k=0,
                                  eos_token_id=self.tokenizer.eos_token_id, pad_token_id=self.tokenizer.pad_token_id)  # fmt: skip
        tokens = out[0, len(ids) :].tolist()
        end = next((i + 1 for i, t in enumerate(tokens) if t == self.tokenizer.eos_token_id), len(tokens))
        finish = "stop" if end < len(tokens) or tokens[-1] == self.tokenizer.eos_token_id else "length"
        text = self.tokenizer.decode(tokens[:end])
        return SimpleNamespace(outputs=[SimpleNamespace(token_ids=tokens[:end], text=text, finish_reason=finish, logprobs=None)])


def test_the_openrlhf_agent_plays_episodes_in_openrlhfs_format_with_the_evaluation_prompts(tiny_model, tmp_path):
    from openrlhf.utils.agent import AgentExecutorBase

    from baselines.grpo.agent import agent_file

    settings = tmp_path / "agent_settings.json"
    settings.write_text(json.dumps({"env": "sokoban", "env_kwargs": {"max_steps": 3}, "max_new_tokens": 16, "invalid_penalty": 0.1}))
    (tmp_path / "agent.py").write_text(agent_file(settings))
    namespace: dict = {}
    exec((tmp_path / "agent.py").read_text(), namespace)  # what OpenRLHF's loader does with the file
    executor = namespace["AgentExecutor"]()
    assert isinstance(executor, AgentExecutorBase)
    engine = TinyEngine(tiny_model)
    task = SOKOBAN.tasks("train", 1)[0]
    label = json.dumps(task.to_json())
    result = asyncio.run(executor.execute("", label, SimpleNamespace(logprobs=None, max_tokens=None), 4096, engine.tokenizer, engine))
    assert set(result) >= {"observation_tokens", "action_ranges", "reward", "scores", "extra_logs", "rollout_log_probs", "truncated"}
    ids, ranges = result["observation_tokens"], result["action_ranges"]
    actions = [engine.tokenizer.decode(ids[a:b], skip_special_tokens=True) for a, b in ranges]
    assert len(actions) == 3 == result["extra_logs"]["env_steps"]
    env = SOKOBAN.make(max_steps=3)
    observations = [env.reset(task)] + [env.step(a).observation for a in actions]
    replay(SOKOBAN.make(max_steps=3), task, actions, observations)
    for t, (start, _) in enumerate(ranges):
        assert ids[:start] == evaluation_prompt_ids(engine.tokenizer, observations[: t + 1], actions[:t])
    invalid = result["extra_logs"]["invalid_actions"]
    assert result["reward"] == pytest.approx(result["extra_logs"]["success"] - 0.1 * invalid)


def grpo_config(**overrides):
    from hydra import compose, initialize_config_dir

    from leafe_recipe import CONF_DIR

    with initialize_config_dir(config_dir=str(CONF_DIR), version_base=None):
        return compose("config", overrides=["method=grpo", *[f"{k}={v}" for k, v in overrides.items()]])


def test_the_openrlhf_command_is_accepted_by_openrlhfs_own_parser(tmp_path):
    from baselines.grpo import openrlhf

    g = {**OmegaConf.to_container(grpo_config().method, resolve=True), "passes": 2, "seed": 0, "temperature": 1.0}
    cmd = openrlhf.command(g, "/models/qwen", tmp_path, num_gpus=8, max_new_tokens=256)
    args = openrlhf.parser().parse_args(cmd[3:])
    assert cmd[1:3] == ["-m", "openrlhf.cli.train_ppo_ray"]
    flags = vars(args)
    assert flags["algo.advantage.estimator"] == "group_norm" and flags["rollout.n_samples_per_prompt"] == 8
    assert flags["algo.kl.use_loss"] and flags["algo.kl.estimator"] == "k3" and flags["algo.kl.init_coef"] == 0.01
    assert flags["actor.adam.lr"] == 1e-6 and flags["train.colocate_all"] and flags["vllm.enable_sleep"]
    assert flags["train.agent_func_path"] == str(tmp_path / "agent.py") and flags["vllm.num_engines"] == 8
    with pytest.raises(ValueError, match="rejects these flags"):  # a flag of the old example scripts
        openrlhf.command({**g, "openrlhf": {**g["openrlhf"], "extra_args": ["--n_samples_per_prompt", "8"]}}, "m", tmp_path, 1, 256)


def test_openrlhf_without_cuda_stops_with_what_to_do_unless_it_is_a_dry_run():
    from baselines.grpo import NeedsGPU, engine

    with pytest.raises(NeedsGPU, match="needs CUDA GPUs and vLLM.*method.engine=trl.*method.dry_run=true"):
        engine("openrlhf", dry_run=False)
    assert engine("openrlhf", dry_run=True) == "openrlhf" and engine("auto", dry_run=False) == "trl"
