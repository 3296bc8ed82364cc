"""The name openrlhf/models/ring_attn_utils.py imports; used only for ring attention."""

from flash_attn import unavailable

all_gather = unavailable("utils.distributed.all_gather")
