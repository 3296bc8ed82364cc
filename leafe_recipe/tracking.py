"""Experiment tracking, optional: `logger=wandb|tensorboard|none` (hydra_conf/logger/).

The `leafe` app starts one tracker per run (a sweep cell); the stages log what they measure
as they go (stage 1's running ledger per finished tree, each evaluation's Pass@k, the run's
ledger at the end), and the trainers log to the same place through their own switches
(`openrlhf_flags` for OpenRLHF's SFT, `trl_report_to` for TRL's GRPO). With no tracker
started, `log` does nothing, so library use needs none.

W&B offline mode is honoured (`logger.offline=true`, or WANDB_MODE=offline): runs are written
under <run dir>/wandb for `wandb sync`. OpenRLHF only logs to W&B with an API key
(--logger.wandb.key); without one (offline, say) its SFT logs go to TensorBoard files under
<run dir>/tensorboard instead, and the run says so.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

LOGGERS = ("none", "wandb", "tensorboard")


class TrackingError(ValueError):
    """The logger config is wrong; the message says what to change."""


@dataclass
class _Tracker:
    kind: str
    run_dir: Path
    name: str
    group: str
    writer: Any  # the wandb run or the tensorboard SummaryWriter
    steps: dict[str, int]
    tensorboard_dir: Path


_active: _Tracker | None = None


def start(logger: dict[str, Any], run_dir: Path, name: str, group: str, config: dict[str, Any]) -> None:
    """Start the run's tracker (`logger` is the resolved hydra_conf/logger/ config)."""
    global _active
    kind = logger.get("name", "none")
    if kind not in LOGGERS:
        raise TrackingError(f"logger={kind!r}: use one of {', '.join(LOGGERS)}")
    finish()
    if kind == "none":
        return
    tb_dir = Path(logger.get("dir") or run_dir / "tensorboard")
    if kind == "tensorboard":
        from torch.utils.tensorboard import SummaryWriter

        writer = SummaryWriter(log_dir=str(tb_dir / "leafe"))
    else:
        import wandb

        mode = "offline" if logger.get("offline") else None  # None: WANDB_MODE or the account's setting
        writer = wandb.init(
            project=logger.get("project"), entity=logger.get("entity"), group=logger.get("group") or group, name=name,
            config=config, dir=str(run_dir), mode=mode, reinit="finish_previous",
        )  # fmt: skip
    _active = _Tracker(kind, run_dir, name, logger.get("group") or group, writer, {}, tb_dir)


def log(stage: str, metrics: dict[str, Any], step: int | None = None) -> None:
    """Log the numbers of `metrics` (nested dicts flattened) as <stage>/<key>; a no-op without a tracker."""
    if _active is None:
        return
    flat = {f"{stage}/{k}": float(v) for k, v in _flatten(metrics).items()}
    if not flat:
        return
    step = _active.steps.get(stage, 0) if step is None else step
    _active.steps[stage] = step + 1
    if _active.kind == "tensorboard":
        for key, value in flat.items():
            _active.writer.add_scalar(key, value, step)
        _active.writer.flush()
    else:
        _active.writer.log(flat)


def _flatten(metrics: dict[str, Any], prefix: str = "") -> dict[str, float]:
    out = {}
    for key, value in metrics.items():
        if isinstance(value, dict):
            out.update(_flatten(value, f"{prefix}{key}/"))
        elif isinstance(value, (int, float)):
            out[f"{prefix}{key}"] = value
    return out


def finish() -> None:
    global _active
    if _active is None:
        return
    if _active.kind == "tensorboard":
        _active.writer.close()
    else:
        _active.writer.finish()
    _active = None


def openrlhf_flags(job: str) -> list[str]:
    """OpenRLHF trainer flags that log the job (`job`: sft, grpo...) where this run's tracker is."""
    if _active is None:
        return []
    if _active.kind == "wandb" and os.environ.get("WANDB_API_KEY") and _active.writer.settings.mode != "offline":
        # OpenRLHF logs to W&B when its key flag is set and logs in with it only when wandb has no
        # key: wandb reads WANDB_API_KEY from the environment, so the command line never holds it
        return ["--logger.wandb.key", "WANDB_API_KEY", "--logger.wandb.project", _active.writer.project,
                "--logger.wandb.group", _active.group, "--logger.wandb.run_name", f"{_active.name}-{job}"]  # fmt: skip
    if _active.kind == "wandb":
        print(f"[tracking] OpenRLHF logs to W&B only online with WANDB_API_KEY; its {job} logs go to {_active.tensorboard_dir}")
    return ["--logger.tensorboard_dir", str(_active.tensorboard_dir), "--logger.wandb.run_name", f"{_active.name}-{job}"]


def trl_report_to() -> list[str]:
    """TRL's `report_to` for this run's tracker (TensorBoard: transformers reads its folder from
    TENSORBOARD_LOGGING_DIR, set here to <run dir>/tensorboard/grpo)."""
    if _active is None:
        return []
    if _active.kind == "tensorboard":
        os.environ["TENSORBOARD_LOGGING_DIR"] = str(_active.tensorboard_dir / "grpo")
    return [_active.kind]
