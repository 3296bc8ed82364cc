"""leafe-recipe: LEAFE (reflective experience, rollback, distillation) for LLM agents."""

import warnings
from pathlib import Path

# torch imports the deprecated `pynvml` that openrlhf pins; the warning says nothing to our users.
warnings.filterwarnings("ignore", message="The pynvml package is deprecated")

_HERE = Path(__file__).resolve().parent


def _data_dir(name: str) -> Path:
    """A top-level folder of the repository (editable install) or its copy inside the package (wheel)."""
    for candidate in (_HERE / name, _HERE.parent / name):
        if candidate.is_dir():
            return candidate
    raise FileNotFoundError(f"leafe-recipe is installed without its {name}/ folder; reinstall with `pip install -e .`")


def cache_dir() -> Path:
    """Where built models and simulator caches live: $LEAFE_CACHE, else ~/.cache/leafe-recipe."""
    import os

    return Path(os.environ.get("LEAFE_CACHE", Path.home() / ".cache" / "leafe-recipe"))


class Unavailable(RuntimeError):
    """Something a run needs is not on this machine (a GPU, a simulator, a data set); the
    message says how to get it. A Hydra sweep records such a cell as not run and goes on."""


CONF_DIR = _data_dir("hydra_conf")
TASKS_DIR = _data_dir("tasks")
"""The lm-eval task folders (one per benchmark); `leafe-eval` puts them on lm-eval's include path."""
