from leafe_recipe.envs.base import get_family
from leafe_recipe.envs.sokoban import parse_action
from leafe_recipe.policy import Sampling
from leafe_recipe.policy.hf import HFPolicy
from leafe_recipe.prompts import build_messages, build_reflection, parse_reflection
import shutil
from pathlib import Path

import leafe_recipe
from leafe_recipe.tiny import _SOURCES, build_tiny_model, resolve_model, source_hash

SOKOBAN = get_family("sokoban")


def test_tiny_resolves_to_a_local_directory_and_other_names_pass_through(tiny_model):
    assert resolve_model("tiny") == tiny_model
    assert resolve_model("Qwen/Qwen2.5-7B-Instruct") == "Qwen/Qwen2.5-7B-Instruct"
    assert build_tiny_model() == build_tiny_model()  # built once, then reused


def test_the_tiny_model_answers_in_the_formats_the_pipeline_parses(tiny_model):
    """Taught on prompt tails, it must hold on full-length prompts (its attention is a sliding window)."""
    env = SOKOBAN.make(max_steps=12)
    observations, actions, prompts = [], [], []
    for task in SOKOBAN.tasks("test", 3):
        observations = [env.reset(task)]
        actions = []
        for _ in range(3):
            actions.append("Action: up")
            observations.append(env.step("Action: up").observation)
        prompts.append(build_messages(SOKOBAN.system_prompt, observations, actions, window=2))
        prompts.append(build_reflection(observations, actions, finished=True))
    out = HFPolicy(tiny_model).generate(prompts, Sampling(temperature=0.0, max_new_tokens=48))
    assert all(parse_action(c.text) is not None for c in out[0::2]), [c.text for c in out[0::2]]
    assert all(parse_reflection(c.text, t=3).parsed for c in out[1::2]), [c.text for c in out[1::2]]


def test_the_cache_key_covers_every_file_the_model_is_taught_from(tmp_path):
    package = Path(leafe_recipe.__file__).parent
    for name in _SOURCES:
        (tmp_path / name).parent.mkdir(parents=True, exist_ok=True)
        shutil.copy(package / name, tmp_path / name)
    before = source_hash(tmp_path)
    assert before == source_hash(package)
    for name in ("prompts.py", "envs/sokoban.py"):
        with open(tmp_path / name, "a") as f:
            f.write("\n# edited\n")
        assert source_hash(tmp_path) != before, name
        before = source_hash(tmp_path)
