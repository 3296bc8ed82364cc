"""A stand-in for `flash_attn`, put on `sys.path` only inside the CPU SFT process that
`python -m leafe_recipe.train` starts (the directory above it is not on the path elsewhere).

OpenRLHF 0.11.2 imports `flash_attn.bert_padding` and `flash_attn.utils.distributed` when
`openrlhf.models` is imported (models/ring_attn_utils.py), but calls them only for packed
samples and ring attention, which the CPU run does not use; flash-attn itself cannot be
installed without CUDA. Every name here raises if it is called. `flash_attn.ops` is absent
on purpose: `openrlhf.models.utils.log_probs_from_logits` catches that ImportError and takes
its pure-torch path. Upstream PR OpenRLHF#1302 (optional flash_attn imports) would retire it.
"""

from collections.abc import Callable
from typing import NoReturn


def unavailable(name: str) -> Callable[..., NoReturn]:
    """A function that fails loudly: reaching it means a flash-attn code path ran on CPU."""

    def stub(*args: object, **kwargs: object) -> NoReturn:
        raise RuntimeError(
            f"flash_attn.{name} was called, but this process runs leafe-recipe's CPU stand-in for "
            "flash-attn. Packing (--ds.packing_samples) and ring attention need CUDA and the real "
            "flash-attn package (pip install -e .[gpu])."
        )

    stub.__name__ = name.rsplit(".", 1)[-1]
    return stub
