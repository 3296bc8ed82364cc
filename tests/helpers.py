"""What several test files need: the `leafe` console scripts as a user runs them, the app's
config as Hydra composes it, and a run context built from that config."""

import subprocess
import sys
from pathlib import Path

from leafe_recipe.context import RunContext, composed
from leafe_recipe.envs.base import get_family

BIN = Path(sys.executable).parent
LEAFE = str(BIN / "leafe")


def leafe(*overrides: str, cwd: Path, script: str = "leafe", timeout: int = 900) -> subprocess.CompletedProcess:
    """A console script (`leafe`, `leafe-splits`, ...) run in `cwd`."""
    return subprocess.run([str(BIN / script), *overrides], cwd=cwd, capture_output=True, text=True, timeout=timeout)


compose = composed  # the app's config with these overrides (and Hydra's own config, with hydra=True)


def context(run_dir: Path, *overrides: str, given: tuple[str, ...] = ()) -> RunContext:
    """The run context the app would hand a method, for these overrides."""
    cfg = compose(*overrides)
    return RunContext.create(cfg, get_family(cfg.env.name), Path(run_dir), Path(run_dir) / "eval", set(given))


def method_settings(block: str, method: str = "leafe", **overrides):
    """A method config block as the app resolves it (method.explore, method.distill, method.sft),
    with `overrides`: the one home of their values is the method's YAML."""
    from omegaconf import OmegaConf

    return {**OmegaConf.to_container(compose(f"method={method}").method[block], resolve=True), **overrides}


def explore_config(**overrides):
    from leafe_recipe.explore import ExploreConfig

    return ExploreConfig(**method_settings("explore", **{"history_window": 2, **overrides}))


def distill_config(**overrides):
    from leafe_recipe.distill import DistillConfig

    return DistillConfig(**method_settings("distill", **{"history_window": 2, "seed": 0, **overrides}))


def sft_config(model: str, datasets: list, output_dir, **overrides):
    from leafe_recipe.train import SFTConfig

    return SFTConfig(**method_settings("sft", model=model, datasets=[str(d) for d in datasets], output_dir=str(output_dir), **overrides))
