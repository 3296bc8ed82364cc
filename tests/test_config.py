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
    for backend in ("hf", "vllm"):
        BackendConfig(**config(f"backend={backend}").backend)
    leafe = config("method=leafe", "experiment=smoke").method
    ExploreConfig(**leafe.explore)
    DistillConfig(**leafe.distill)
    SFTConfig(model="m", datasets=["d"], output_dir="o", **leafe.sft)


def hydra_config(*overrides):
    with initialize_config_dir(config_dir=str(CONF_DIR), version_base=None):
        return compose("config", overrides=list(overrides), return_hydra_config=True)


def test_every_paper_experiment_composes_for_every_cell_of_its_sweep():
    """Each table's sweep, cell by cell: the method's and environment's configs with the experiment's values."""
    from leafe_recipe.pipeline import method_entry

    expected = {"table1": (128, 4 * 6 * 2), "table2": (128, 3 * 3), "table3": (None, 3), "table4": (128, 2 * 3), "smoke_sweep": (8, 10 * 2),
                "micro_sokoban": (32, 8 * 3)}
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
    assert (micro.model, micro.env.n_test, micro.method.sft.learning_rate, micro.method.grpo.learning_rate) == ("micro", 100, 2e-4, 2e-4)
    demo = config("experiment=micro_sokoban", "method=leafe")  # `make demo`: the study's LEAFE cell, seed 0
    assert (demo.model, demo.seed, demo.n_samples, demo.env.n_train, demo.env.n_test) == ("micro", 0, 32, 64, 100)


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
