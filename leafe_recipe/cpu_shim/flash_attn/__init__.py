"""A stand-in for `flash_attn`, put first on the PYTHONPATH of an OpenRLHF launch where the
real package does not import (leafe_recipe.gpu.openrlhf_env): on CPU, and on a GPU without
flash-attn, where the model then runs with SDPA. The directory above it is not on the path
elsewhere.

OpenRLHF 0.11.2 imports `flash_attn.bert_padding` and `flash_attn.utils.distributed` when
`openrlhf.models` is imported (models/ring_attn_utils.py), but calls them only for packed
samples and ring attention, which these runs do not use; flash-attn itself cannot be
installed without CUDA, and on a GPU only when built for that torch. Every name here raises
if it is called. `flash_attn.ops` is absent on purpose: `openrlhf.models.utils.log_probs_from_logits`
catches that ImportError and takes its pure-torch path. Upstream PR OpenRLHF#1302 (optional
flash_attn imports) would retire it.
"""

from collections.abc import Callable
from typing import NoReturn

STAND_IN = True  # leafe_recipe.gpu.flash_attn() tells this module from the real package by it


def unavailable(name: str) -> Callable[..., NoReturn]:
    """A function that fails loudly: reaching it means a flash-attn code path ran without flash-attn."""

    def stub(*args: object, **kwargs: object) -> NoReturn:
        raise RuntimeError(
            f"flash_attn.{name} was called, but this process runs leafe-recipe's stand-in for "
            "flash-attn (the real package does not import here). Packing (--ds.packing_samples) "
            "and ring attention need CUDA and the real flash-attn package (pip install -e .[gpu])."
        )

    stub.__name__ = name.rsplit(".", 1)[-1]
    return stub
