"""logger=wandb|tensorboard|none: stage metrics where researchers watch them, trainers beside them."""

import pytest

from baselines.grpo import openrlhf
from leafe_recipe import tracking


@pytest.fixture(autouse=True)
def no_tracker():
    yield
    tracking.finish()


def scalars(folder):
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    acc = EventAccumulator(str(folder))
    acc.Reload()
    return {tag: [(e.step, e.value) for e in acc.Scalars(tag)] for tag in acc.Tags()["scalars"]}


def test_without_a_tracker_logging_does_nothing_and_trainers_get_no_flags():
    tracking.log("explore", {"env_steps": 3})
    assert tracking.openrlhf_flags("sft") == [] and tracking.trl_report_to() == []


def test_tensorboard_gets_every_number_of_a_stage_flattened_and_stepped(tmp_path):
    tracking.start({"name": "tensorboard", "dir": None}, tmp_path, "leafe_sokoban", "sweep", {})
    tracking.log("explore", {"env_steps": 3, "note": "text is skipped"}, step=1)
    tracking.log("explore", {"env_steps": 7}, step=2)
    tracking.log("eval/base", {"pass_at_k": {"1": 0.25, "8": 0.5}})
    tracking.finish()
    got = scalars(tmp_path / "tensorboard" / "leafe")
    assert got["explore/env_steps"] == [(1, 3.0), (2, 7.0)]
    assert got["eval/base/pass_at_k/1"] == [(0, 0.25)] and got["eval/base/pass_at_k/8"] == [(0, 0.5)]
    assert "explore/note" not in got


def test_trainers_log_beside_it_with_flags_their_own_parsers_accept(tmp_path):
    tracking.start({"name": "tensorboard", "dir": None}, tmp_path, "cell", "sweep", {})
    flags = tracking.openrlhf_flags("grpo")
    assert flags == ["--logger.tensorboard_dir", str(tmp_path / "tensorboard"), "--logger.wandb.run_name", "cell-grpo"]
    args = openrlhf.parser().parse_args(flags)
    assert getattr(args, "logger.tensorboard_dir") == str(tmp_path / "tensorboard")
    assert tracking.trl_report_to() == ["tensorboard"]


def test_wandb_offline_writes_a_run_to_sync_later_and_keeps_the_key_off_the_command_line(tmp_path, monkeypatch):
    monkeypatch.setenv("WANDB_API_KEY", "k" * 40)
    monkeypatch.setenv("WANDB_SILENT", "true")
    tracking.start({"name": "wandb", "project": "p", "entity": None, "group": None, "offline": True}, tmp_path, "cell", "sweep", {"seed": 0})
    tracking.log("eval/base", {"pass_at_k": {"1": 0.5}})
    # offline, OpenRLHF cannot reach W&B: its logs go to TensorBoard files in the run folder
    assert tracking.openrlhf_flags("sft")[:2] == ["--logger.tensorboard_dir", str(tmp_path / "tensorboard")]
    tracking.finish()
    [run] = (tmp_path / "wandb").glob("offline-run-*")
    assert list(run.glob("run-*.wandb"))


def test_a_wrong_logger_is_named():
    with pytest.raises(tracking.TrackingError, match="logger='mlflow': use one of none, wandb, tensorboard"):
        tracking.start({"name": "mlflow"}, None, "", "", {})
