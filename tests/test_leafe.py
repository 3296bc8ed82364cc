"""LEAFE's own decisions between the stages (leafe_recipe/leafe.py)."""

import pytest
from omegaconf import OmegaConf

from leafe_recipe.distill import DistillStats
from leafe_recipe.leafe import LeafeError, _training_data


def method(ablation=None, beta=1.0):
    return OmegaConf.create({"ablation": ablation, "beta": beta, "distill": {"cf_only_successful": True}})


@pytest.fixture
def sft(tmp_path):
    (tmp_path / "sft").mkdir()
    (tmp_path / "sft" / "sft_cf.jsonl").write_text("")
    (tmp_path / "sft" / "sft_reh.jsonl").write_text('{"prompt": [], "response": []}\n')
    return tmp_path


def test_an_empty_d_cf_is_not_silently_the_rehearsal_only_ablation(sft):
    stats = DistillStats(trees=3, branches=5, cf_candidates=0, cf=0, successful_rollouts=2, reh=7)
    with pytest.raises(LeafeError, match=r"no counterfactual data.*3 trees, 5 branches, 0 eligible.*D_reh 7.*method.ablation=rehearsal_only"):
        _training_data(method(), stats, sft)


def test_the_rehearsal_only_ablation_trains_on_d_reh_alone(sft):
    (sft / "sft" / "sft_cf.jsonl").write_text('{"prompt": [], "response": []}\n')  # even with D_cf at hand
    stats = DistillStats(cf=1, reh=1)
    assert _training_data(method("rehearsal_only"), stats, sft) == ([str(sft / "sft" / "sft_reh.jsonl")], None)
    files, probs = _training_data(method(beta=1.0), stats, sft)
    assert files == [str(sft / "sft" / "sft_cf.jsonl"), str(sft / "sft" / "sft_reh.jsonl")] and probs == [0.5, 0.5]
