"""The config: every default in one home, presets that compose with every environment, and the
paper's experiments cell by cell."""

import dataclasses
import inspect

import pytest
from omegaconf import OmegaConf

from helpers import compose as config
from leafe_recipe import CONF_DIR
from leafe_recipe.distill import DistillConfig
from leafe_recipe.envs.base import get_family, known_families
from leafe_recipe.explore import ExploreConfig
from leafe_recipe.train import SFTConfig


def test_the_paper_codecontests_setting_is_a_config_not_a_code_path():
    cfg = config("experiment=leafe_codecontests")
    assert (cfg.env.name, cfg.method.name) == ("codecontests", "leafe")
    assert cfg.env.kwargs.max_turns == 4 and cfg.method.explore.reflect_every == 0
    # the generation length belongs to the environment: a preset cannot forget it
    assert cfg.env.max_new_tokens == 2048 and "max_new_tokens" not in cfg.sampling


def test_each_environment_sets_its_own_generation_length_and_window():
    lengths = {env: config(f"env={env}").env.max_new_tokens for env in ("sokoban", "codecontests", "mbpp", "humaneval")}
    assert lengths == {"sokoban": 256, "codecontests": 2048, "mbpp": 1024, "humaneval": 1024}
    assert config("env=codecontests").env.history_window is None and config("env=sokoban").env.history_window == 2


def test_method_leafe_defaults_are_the_papers_sft_settings():
    sft = config("method=leafe").method.sft
    assert (sft.train_batch_size, sft.learning_rate, sft.epochs) == (128, 1e-6, 2)


def test_every_config_group_builds_its_dataclass():
    """A key in a YAML that its dataclass does not take would fail here, not deep in a run."""
    leafe = config("method=leafe", "experiment=smoke").method
    ExploreConfig(**leafe.explore, history_window=2)
    DistillConfig(**leafe.distill, history_window=2, seed=0)
    SFTConfig(model="m", datasets=["d"], output_dir="o", **leafe.sft)


def _defaulted(fn) -> dict:
    return {p.name: p.default for p in inspect.signature(fn).parameters.values() if p.default is not p.empty}


def test_every_default_has_one_home():
    """A value the YAML holds is not written again in code, where a user's override would miss it;
    where two forms are unavoidable (an API's own defaults), the test holds them equal."""
    blocks = {ExploreConfig: "explore", DistillConfig: "distill", SFTConfig: "sft"}
    leafe = OmegaConf.load(CONF_DIR / "method" / "leafe.yaml")
    for cls, block in blocks.items():
        written_twice = {f.name for f in dataclasses.fields(cls) if f.default is not dataclasses.MISSING} & set(leafe[block])
        assert not written_twice, (cls.__name__, written_twice)
    for name in [n for n in known_families() if (CONF_DIR / "env" / f"{n}.yaml").exists()]:
        family, env = get_family(name), OmegaConf.load(CONF_DIR / "env" / f"{name}.yaml")
        assert not set(_defaulted(family.make.__wrapped__)) & set(env.kwargs), name
        assert not set(_defaulted(family.tasks.__wrapped__)) & set(env.tasks or {}), name
    from leafe_recipe.policy import Sampling
    from leafe_recipe.policy.hf import HFPolicy

    sampling = config().sampling
    assert {k: getattr(Sampling(), k) for k in sampling} == {**sampling, "stop": ()}
    hf = OmegaConf.load(CONF_DIR / "backend" / "hf.yaml")
    assert {k: v for k, v in _defaulted(HFPolicy.__init__).items()} == {k: v for k, v in hf.items() if k != "name"}


PRESETS = sorted(p.stem for p in (CONF_DIR / "experiment").glob("*.yaml"))


@pytest.mark.parametrize("preset", PRESETS)
def test_every_preset_composes_with_every_environment(preset):
    """Its environment-specific part lives with the environment (env_scale/<env>_<scale>.yaml), so a
    preset that does not choose its environment runs on any: every env.kwargs and env.tasks key is
    one the environment takes."""
    pinned = "override /env" in (CONF_DIR / "experiment" / f"{preset}.yaml").read_text()
    for name in [None] if pinned else [n for n in known_families() if (CONF_DIR / "env" / f"{n}.yaml").exists()]:
        cfg = config(f"experiment={preset}", *([f"env={name}"] if name else []))
        family = get_family(cfg.env.name)
        inspect.signature(family.make.__wrapped__).bind(**cfg.env.kwargs)
        inspect.signature(family.tasks.__wrapped__).bind("test", 1, **(cfg.env.tasks or {}))


def test_every_method_names_its_entry_point_in_its_yaml():
    from leafe_recipe.pipeline import method_entry

    for path in sorted((CONF_DIR / "method").glob("*.yaml")):
        assert callable(method_entry(config(f"method={path.stem}"))), path.stem


def hydra_config(*overrides):
    return config(*overrides, hydra=True)


def test_every_paper_experiment_composes_for_every_cell_of_its_sweep():
    """Each table's sweep, cell by cell: the method's and environment's configs with the experiment's values."""
    from leafe_recipe.pipeline import method_entry

    expected = {"table1": (128, 4 * 6 * 2), "table2": (128, 3 * 3), "table3": (None, 3), "table4": (128, 2 * 3), "smoke_sweep": (8, 10 * 2),
                "micro_sokoban": (128, 3 * 3), "micro_sokoban_3seeds": (128, 4 * 3), "micro_grpo_tuning": (32, 2 * 2 * 2)}
    for experiment, (n_samples, n_cells) in expected.items():
        params = {k: str(v).split(",") for k, v in hydra_config(f"experiment={experiment}").hydra.sweeper.params.items()}
        cells = [[]]
        for key, values in params.items():
            cells = [c + [f"{key}={v.strip()}"] for c in cells for v in values]
        assert len(cells) == n_cells, experiment
        for cell in cells:
            cfg = config(f"experiment={experiment}", *cell)
            assert callable(method_entry(cfg)) and (n_samples is None or cfg.n_samples == n_samples)
    table1 = {env: config("experiment=table1", f"env={env}").env.n_test for env in ("webshop", "alfworld", "scienceworld", "sokoban")}
    assert table1 == {"webshop": 500, "alfworld": 140, "scienceworld": 300, "sokoban": 500}
    assert config("experiment=table2").eval_also.mbpp.n_test == 500 and config("experiment=table2").env.n_test == 165
    assert config("experiment=table4", "method=leafe_rehearsal_only").method.ablation == "rehearsal_only"
    micro = config("experiment=micro_sokoban", "method=leafe_rl")
    assert (micro.model, micro.env.n_test, micro.method.sft.learning_rate, micro.method.grpo.learning_rate) == ("micro", 100, 2e-4, 1e-3)
    demo = config("experiment=micro_demo", "method=leafe")  # `make demo`: a small LEAFE cell of the study, on validation
    assert (demo.model, demo.seed, demo.n_samples, demo.env.n_train, demo.eval_split) == ("micro", 0, 32, 16, "validation")
    assert (demo.env.kwargs, demo.env.tasks, demo.budget) == (micro.env.kwargs, micro.env.tasks, micro.budget)


def test_the_paper_experiments_say_where_each_value_comes_from():
    for name in ("table1", "table2", "table3", "table4"):
        text = (CONF_DIR / "experiment" / f"{name}.yaml").read_text()
        assert "[ours]" in text and "NOT measured" in text and "GPU-hours" in text, name


def test_the_slurm_launcher_composes_on_the_submitit_plugin():
    import importlib

    launcher = hydra_config("experiment=table1", "hydra/launcher=leafe_slurm", "hydra.launcher.partition=gpu").hydra.launcher
    module, cls = launcher._target_.rsplit(".", 1)
    assert cls == "SlurmLauncher" and hasattr(importlib.import_module(module), cls)
    assert (launcher.gpus_per_node, launcher.nodes, launcher.partition) == (8, 1, "gpu")
