from leafe_recipe.envs.base import get_family
from leafe_recipe.envs.sokoban import parse_action
from leafe_recipe.policy import Sampling
from leafe_recipe.policy.hf import HFPolicy
from leafe_recipe.prompts import build_messages, build_reflection, parse_reflection
import random

from leafe_recipe import models, tiny

SOKOBAN = get_family("sokoban")


def test_tiny_resolves_to_a_local_directory_and_other_names_pass_through(tiny_model):
    assert models.resolve("tiny") == tiny_model
    assert models.resolve("Qwen/Qwen2.5-7B-Instruct") == "Qwen/Qwen2.5-7B-Instruct"
    assert tiny.build() == tiny.build()  # built once, then reused


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


def test_the_build_key_is_what_the_model_learned_from_not_its_source_code(tiny_model):
    """Moving or renaming a function rebuilds nothing: the key reads examples, settings and versions only."""
    examples = tiny._format_examples(random.Random(tiny.SETTINGS["seed"]))
    key = models.build_key(examples, tiny.SETTINGS)
    assert tiny_model.endswith(key)
    assert models.build_key([list(e) for e in examples], dict(tiny.SETTINGS)) == key
    assert models.build_key(examples[:-1], tiny.SETTINGS) != key
    assert models.build_key(examples, {**tiny.SETTINGS, "steps": 1}) != key


def test_the_tiny_model_learns_from_build_rooms_and_its_manifest_says_so(tiny_model):
    manifest = models.manifest_of(tiny_model)
    assert manifest.learned_from == models.manifest_of("tiny").learned_from  # known before it is built
    assert {e["id"].split("-")[0] for e in manifest.learned_from} == {"build"} and manifest.identity
