"""The run context: what every method needs, resolved once by the app and handed to the method.

A method module is its algorithm and nothing else: it receives a `RunContext` and reads the
starting model, the prompt protocol, the tasks of each split, the stage keys, the policy, the
evaluation and the SFT launch from it; it never resolves them itself. The config is not
mutated: LEAFE + RL's LEAFE stage is a context whose starting model is GRPO's checkpoint
(`with_start`).

The prompt protocol (`PromptSettings`: the history window and the generation length) is one
for the whole run: every method's training prompts and every evaluation use it, and every
checkpoint records it in its manifest. It is the environment's (env.history_window,
env.max_new_tokens) unless the starting model was trained by this project with others (its
manifest says so), and a value given on the command line wins over both.
"""

from __future__ import annotations

import dataclasses
import functools
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable

from omegaconf import DictConfig, OmegaConf

from leafe_recipe import models
from leafe_recipe.envs.base import SPLITS, EnvFamily, Task
from leafe_recipe.manifest import MANIFEST, Manifest
from leafe_recipe.policy import Policy, Sampling

PolicyLoader = Callable[[], Policy]
PROMPT_KEYS = ("history_window", "max_new_tokens")


def app_defaults() -> DictConfig:
    """hydra_conf/config.yaml as written (unresolved): where `leafe-agent` takes the defaults the app has (seed, max_concurrent)."""
    from leafe_recipe import CONF_DIR

    return OmegaConf.load(CONF_DIR / "config.yaml")


def composed(*overrides: str, hydra: bool = False) -> DictConfig:
    """The app's config as Hydra composes it for these command-line overrides (with Hydra's own
    node, hydra=True): where code outside the app (benchmarks, tests, notebooks) takes a method's
    settings, so none is restated."""
    from hydra import compose, initialize_config_dir

    from leafe_recipe import CONF_DIR

    with initialize_config_dir(config_dir=str(CONF_DIR), version_base=None):
        return compose("config", overrides=list(overrides), return_hydra_config=hydra)


def backend_settings(name: str) -> dict[str, Any]:
    """hydra_conf/backend/<name>.yaml: the one home of a generation backend's settings."""
    from leafe_recipe import CONF_DIR

    path = CONF_DIR / "backend" / f"{name}.yaml"
    if not path.is_file():
        known = ", ".join(sorted(p.stem for p in path.parent.glob("*.yaml")))
        raise ValueError(f"unknown backend {name!r}: {known}")
    return OmegaConf.to_container(OmegaConf.load(path))


def make_policy(path: str, backend: dict[str, Any]) -> Policy:
    """Build the backend named by `backend["name"]` (a hydra_conf/backend/<name>.yaml block: the one
    home of its settings) for a hub id or a local directory (the callers resolve `tiny` and the
    other built-in model names first)."""
    settings = {k: v for k, v in backend.items() if k != "name"}
    if backend.get("name") == "hf":
        from leafe_recipe.policy.hf import HFPolicy

        return HFPolicy(path, **settings)
    if backend.get("name") == "vllm":
        from leafe_recipe.policy.vllm import VLLMPolicy

        extra = settings.pop("extra", None) or {}
        return VLLMPolicy(path, **settings, **extra)
    raise ValueError(f"unknown backend {backend.get('name')!r}: use hf or vllm (hydra_conf/backend/)")


def plain(node: Any) -> Any:
    """A config node as plain Python (resolved); anything else unchanged."""
    return OmegaConf.to_container(node, resolve=True) if isinstance(node, DictConfig) else node


def sampling_from(node: Any, seed: int, **override: Any) -> Sampling:
    s = {**plain(node), **override}
    return Sampling(**{**s, "stop": tuple(s.get("stop") or ()), "seed": seed})


@dataclass(frozen=True)
class PromptSettings:
    """The prompt protocol of a run: the same for every method's training and every evaluation."""

    history_window: int | None  # action/feedback pairs kept in the prompt (None: all)
    max_new_tokens: int  # generated tokens per action
    source: dict[str, str]  # where each value came from

    def record(self, env: str) -> dict[str, Any]:
        """As a checkpoint's manifest keeps it."""
        return {"history_window": self.history_window, "max_new_tokens": self.max_new_tokens, "env": env}


def resolve_prompt(env: DictConfig, trained: Manifest | None, start: str, given: set[str]) -> PromptSettings:
    """The environment's settings, a checkpoint's own where it records them, the command line's
    where given (`given`: the keys of env.<key>=... overrides)."""
    values, source = {}, {}
    recorded = (trained.prompt or {}) if trained is not None else {}
    for key in PROMPT_KEYS:
        if key in given:
            values[key], source[key] = env[key], "command line"
        elif key in recorded:
            values[key], source[key] = recorded[key], f"{start}/{MANIFEST}"
        else:
            values[key], source[key] = env[key], f"env config ({env.name})"
    return PromptSettings(values["history_window"], int(values["max_new_tokens"]), source)


@dataclass
class RunContext:
    cfg: DictConfig  # the run's config, resolved; read, never written
    family: EnvFamily
    run_dir: Path
    start: str  # the starting model as named: method.init, else model
    prompt: PromptSettings
    eval_cache: Path  # finished evaluations, keyed by what produced them (evaluate.py)
    heldout: dict[str, Any] | None = None  # the splits audit (splits.py), set by the app

    @classmethod
    def create(cls, cfg: DictConfig, family: EnvFamily, run_dir: Path, eval_cache: Path, given: set[str]) -> "RunContext":
        start = cfg.method.get("init") or cfg.model
        prompt = resolve_prompt(cfg.env, models.manifest_of(start), start, given)
        return cls(cfg, family, run_dir, start, prompt, eval_cache)

    def with_start(self, model: str, run_dir: Path | None = None) -> "RunContext":
        """The same run from another starting model (its prompt protocol stays the run's)."""
        return dataclasses.replace(self, start=model, run_dir=run_dir or self.run_dir)

    @functools.cached_property
    def init(self) -> str:
        """The starting model's path: a built-in model is built here, on first use."""
        return models.resolve(self.start)

    @property
    def seed(self) -> int:
        return int(self.cfg.seed)

    @property
    def env_kwargs(self) -> dict[str, Any]:
        return plain(self.cfg.env.kwargs)

    @property
    def expert(self) -> dict[str, Any]:
        """The expert's settings (env.expert: Sokoban's answer format), where the environment has them."""
        return plain(self.cfg.env.get("expert") or {})

    @property
    def split(self) -> str:
        """The split evaluations run on: validation (model selection, tuning) or test (the reported numbers)."""
        return str(self.cfg.eval_split)

    def size(self, split: str) -> int | None:
        return {"train": self.cfg.env.n_train, "validation": self.cfg.env.n_valid, "test": self.cfg.env.n_test}[split]

    def tasks(self, split: str) -> list[Task]:
        """The run's tasks of a split (cached)."""
        if split not in self._tasks:
            if split not in SPLITS:
                raise ValueError(f"unknown split {split!r}: {', '.join(SPLITS)}")
            self._tasks[split] = self.family.tasks(split, self.size(split), **plain(self.cfg.env.tasks))
        return self._tasks[split]

    @functools.cached_property
    def _tasks(self) -> dict[str, list[Task]]:
        return {}

    def sampling(self, node: Any = None) -> Sampling:
        """The run's action sampling (cfg.sampling, at the protocol's generation length), or a
        method's own settings (a reflection's) when given."""
        if node is None:
            return sampling_from(self.cfg.sampling, self.seed, max_new_tokens=self.prompt.max_new_tokens)
        return sampling_from(node, self.seed)

    def key(self, stage: str, **extra: Any) -> dict[str, Any]:
        """A stage's key: what every stage's output depends on, and `extra`."""
        return {
            "stage": stage,
            "init": models.identity(self.init),
            "env": self.cfg.env.name,
            "tasks": plain(self.cfg.env.tasks),
            "kwargs": self.env_kwargs,
            "sampling": plain(self.cfg.sampling),
            "prompt": self.prompt.record(self.cfg.env.name),
            "seed": self.seed,
            **extra,
        }

    def loader(self, model: str | None = None) -> PolicyLoader:
        """Load the generation backend on first use only (a stage whose output is on disk needs none)."""
        path = model or self.init
        loaded: list[Policy] = []

        def load() -> Policy:
            if not loaded:
                loaded.append(make_policy(path, plain(self.cfg.backend)))
            return loaded[0]

        return load

    def learned(self, tasks: list[Task], stage: str) -> list[dict[str, Any]]:
        """Manifest entries for tasks of this run's environment learned from in `stage`."""
        from leafe_recipe.manifest import learned

        return learned(self.family, tasks, stage)

    def manifest_for(self, stage: str, entries: list[dict[str, Any]], identity: Any, parent: str | None = None) -> Manifest:
        """The manifest of a checkpoint trained in `stage` from `parent` (the starting model) on `entries`."""
        from leafe_recipe.manifest import inherit

        parent = parent or self.start
        return inherit(models.manifest_of(parent), parent, stage, entries, self.prompt.record(self.cfg.env.name), identity)

    def train_sft(self, sft: Any, stage: str, tasks: list[Task], **key_extra: Any) -> tuple[Path, dict[str, int]]:
        """OpenRLHF SFT of `sft` (a train.SFTConfig) at the run's prompt protocol, keyed and resumable
        (train.train_checkpoint); its manifest adds `tasks`, learned from in `stage`, to what the
        model it starts from learned. Returns the checkpoint and its budget."""
        from leafe_recipe.train import train_checkpoint

        entries = self.learned(tasks, stage)
        manifest = lambda key: self.manifest_for(stage, entries, key, parent=sft.model)  # noqa: E731
        return train_checkpoint(sft, self.prompt.record(self.cfg.env.name), manifest, **key_extra)

    def sft(self, node: Any, model: str, datasets: list[str], output_dir: Path, probs: list[float] | None = None, **override: Any) -> Any:
        """A train.SFTConfig from a method's `sft` block."""
        from leafe_recipe.train import SFTConfig

        return SFTConfig(model=model, datasets=datasets, output_dir=str(output_dir), dataset_probs=probs, **{**plain(node), **override})
