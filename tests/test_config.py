from hydra import compose, initialize_config_dir

from leafe_recipe import CONF_DIR
from leafe_recipe.distill import DistillConfig
from leafe_recipe.explore import ExploreConfig
from leafe_recipe.policy import BackendConfig
from leafe_recipe.train import SFTConfig


def config(*overrides):
    with initialize_config_dir(config_dir=str(CONF_DIR), version_base=None):
        return compose("config", overrides=list(overrides))


def test_the_paper_codecontests_setting_is_a_config_not_a_code_path():
    cfg = config("experiment=leafe_codecontests")
    assert (cfg.env.name, cfg.method.name) == ("codecontests", "leafe")
    assert cfg.env.kwargs.max_turns == 4 and cfg.method.explore.reflect_every == 0
    # the generation length belongs to the environment: a preset cannot forget it
    assert cfg.sampling.max_new_tokens == cfg.env.max_new_tokens == 2048


def test_each_environment_sets_its_own_generation_length_and_window():
    lengths = {env: config(f"env={env}").sampling.max_new_tokens for env in ("sokoban", "codecontests", "mbpp", "humaneval")}
    assert lengths == {"sokoban": 256, "codecontests": 2048, "mbpp": 1024, "humaneval": 1024}
    assert config("env=codecontests").env.history_window is None and config("env=sokoban").env.history_window == 2
    assert config("env=mbpp", "env.max_new_tokens=512").sampling.max_new_tokens == 512


def test_method_leafe_defaults_are_the_papers_sft_settings():
    sft = config("method=leafe").method.sft
    assert (sft.train_batch_size, sft.learning_rate, sft.epochs) == (128, 1e-6, 2)


def test_every_config_group_builds_its_dataclass():
    """A key in a YAML that its dataclass does not take would fail here, not deep in a run."""
    for backend in ("hf", "vllm"):
        BackendConfig(**config(f"backend={backend}").backend)
    leafe = config("method=leafe", "experiment=smoke").method
    ExploreConfig(**leafe.explore)
    DistillConfig(**leafe.distill)
    SFTConfig(model="m", datasets=["d"], output_dir="o", **leafe.sft)
