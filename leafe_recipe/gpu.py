"""What a run on GPUs decides before it starts: the attention kernel, the flash_attn stand-in,
and a CUDA architecture list DeepSpeed can read. One home for the three callers that load a
model for training or generation: OpenRLHF's SFT (and GRPO) launch (`train.py`,
`baselines/grpo/openrlhf.py`), the TRL engine (`baselines/grpo/trl_engine.py`) and
evaluation (the hf backend, `policy/hf.py`, and lm-eval's `hf` model, `lm_eval_plugin.py`).

flash-attn is the most common stumbling block of an OpenRLHF install: it must be compiled
against the machine's exact torch and CUDA. So it is used when it imports, and otherwise the
run goes on with PyTorch's SDPA kernels: OpenRLHF 0.11.2 imports `flash_attn` when
`openrlhf.models` is imported (for packed samples and ring attention only), so its launch
then gets this project's stand-in (`cpu_shim/flash_attn`) on PYTHONPATH.
"""

from __future__ import annotations

import importlib
import os
import re
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path

STAND_IN = Path(__file__).resolve().parent / "cpu_shim"  # the folder holding the flash_attn stand-in
FLASH, SDPA = "flash_attention_2", "sdpa"
AUTO = "auto"  # an attention setting that leaves the choice to choose_attention
HALF = ("bfloat16", "float16")  # the dtypes flash-attn computes in
_DTYPE_ALIASES = {"bf16": "bfloat16", "fp16": "float16", "half": "float16", "fp32": "float32", "float": "float32"}
# A TORCH_CUDA_ARCH_LIST entry: PyTorch's form, 9.0, 9.0+PTX, and the arch-specific 9.0a / 10.0f of CUDA 12.8+.
_ARCH = re.compile(r"^(\d+)\.(\d+)([af]?)(\+PTX)?$")
_READABLE = re.compile(r"^\d+\.\d+(\+PTX)?$")  # what DeepSpeed's op builder reads


class AttentionUnavailable(RuntimeError):
    """An attention kernel was asked for by name and cannot run here."""


class ArchListError(ValueError):
    """TORCH_CUDA_ARCH_LIST holds an entry DeepSpeed's op builder cannot read."""


@dataclass(frozen=True)
class FlashAttn:
    """Whether the real flash-attn package imports in this environment, and if not, why."""

    importable: bool
    why: str


@lru_cache(maxsize=1)
def flash_attn() -> FlashAttn:
    """Try `import flash_attn` once per process. A build that does not match the installed
    torch fails here with an undefined symbol (ImportError or OSError): that counts as absent.
    The project's own stand-in, where it is on the path, counts as absent too."""
    try:
        module = importlib.import_module("flash_attn")
    except ModuleNotFoundError:
        return FlashAttn(False, "flash_attn is not installed")
    except (ImportError, OSError) as err:  # installed, built against another torch or CUDA
        return FlashAttn(False, f"flash_attn is installed but does not import ({type(err).__name__}: {err})")
    if getattr(module, "STAND_IN", False):
        return FlashAttn(False, "flash_attn is leafe-recipe's stand-in")
    return FlashAttn(True, f"flash_attn {getattr(module, '__version__', '?')} imports")


def dtype_name(dtype: object) -> str:
    """A torch dtype or its spelling (bf16, torch.bfloat16, "float16") as torch's name for it."""
    name = str(dtype).removeprefix("torch.")
    return _DTYPE_ALIASES.get(name, name)


def model_dtype(path: str, dtype: str) -> str:
    """The dtype a model loads in: `dtype` unless it is "auto", else the checkpoint's own
    (config.json's), which transformers' dtype="auto" uses; float32 where the config names none."""
    if dtype != AUTO:
        return dtype_name(dtype)
    from transformers import AutoConfig

    config = AutoConfig.from_pretrained(path)
    return dtype_name(getattr(config, "dtype", None) or "float32")


def choose_attention(requested: str | None, on_gpu: bool, dtype: str, who: str) -> str:
    """The attention implementation `who` loads its model with, said in one log line.

    `requested` None or "auto" decides: flash_attention_2 on a GPU with bf16/fp16 weights when
    flash_attn imports, else sdpa (PyTorch's fused kernels: on CPU, in float32, or without
    flash-attn). Any other value is used as given; a flash kernel asked for by name where
    flash_attn does not import stops here, before a model loads or a launcher starts."""
    flash = flash_attn()
    dtype = dtype_name(dtype)
    if requested not in (None, AUTO):
        if requested.startswith("flash_attention") and not flash.importable:
            raise AttentionUnavailable(
                f"{who}: attn_implementation={requested} needs the flash-attn package, but {flash.why}. Leave the "
                f"setting unset (or `auto`) to use {SDPA} instead, or install flash-attn built for this torch "
                "(pip install -e .[gpu])"
            )
        choice, why = requested, "as configured"
    elif not on_gpu:
        choice, why = SDPA, "no GPU"
    elif dtype not in HALF:
        choice, why = SDPA, f"{dtype} weights: flash-attn computes in bf16/fp16 only"
    elif flash.importable:
        choice, why = FLASH, flash.why
    else:
        choice, why = SDPA, flash.why
    print(f"[attention] {who}: {choice} ({why})", flush=True)
    return choice


def deepspeed_arch_list(value: str | None) -> tuple[str | None, str | None]:
    """TORCH_CUDA_ARCH_LIST in the form DeepSpeed 0.19.6's op builder reads, and a note when it
    changed. DeepSpeed splits each entry at the dot and reads both halves as integers (with
    an optional +PTX), so the arch-specific 9.0a or 10.0f that CUDA 12.8+ images set fails
    inside the first optimizer step's FusedAdam build; they become 9.0 and 10.0 (the same
    machine code for DeepSpeed's kernels, which use no arch-specific instructions). Entries
    may be separated by semicolons, spaces or commas. Anything else (a named architecture
    such as Hopper, sm_90) raises ArchListError, before the launch."""
    if value is None or not value.strip():
        return value, None
    if "," not in value and all(_READABLE.match(e) for e in value.replace(";", " ").split()):
        return value, None
    entries, bad = [], []
    for entry in re.split(r"[;,\s]+", value.strip()):
        m = _ARCH.match(entry)
        if m is None:
            bad.append(entry)
            continue
        major, minor, _suffix, ptx = m.groups()
        normal = f"{int(major)}.{int(minor)}{ptx or ''}"
        if normal not in entries:
            entries.append(normal)
    if bad:
        raise ArchListError(
            f"TORCH_CUDA_ARCH_LIST={value!r}: DeepSpeed 0.19.6 cannot read {', '.join(map(repr, bad))}. Give compute "
            "capabilities as MAJOR.MINOR with an optional +PTX, separated by semicolons (e.g. 8.0;9.0+PTX), or unset it "
            "to build for the visible GPUs"
        )
    normal = ";".join(entries)
    return normal, f"TORCH_CUDA_ARCH_LIST={value!r} -> {normal!r} for DeepSpeed's op builder (it reads MAJOR.MINOR[+PTX] only)"


def openrlhf_env(on_gpu: bool, environ: dict[str, str] | None = None) -> dict[str, str]:
    """What an OpenRLHF launch adds to the environment: the flash_attn stand-in first on
    PYTHONPATH where flash_attn does not import, and on GPUs a TORCH_CUDA_ARCH_LIST that
    DeepSpeed reads (each change said in one log line; an unreadable list raises ArchListError)."""
    environ = dict(os.environ if environ is None else environ)
    extra: dict[str, str] = {}
    flash = flash_attn()
    if not flash.importable:
        extra["PYTHONPATH"] = os.pathsep.join(p for p in (str(STAND_IN), environ.get("PYTHONPATH", "")) if p)
        print(f"[attention] OpenRLHF: {flash.why}; leafe-recipe's flash_attn stand-in is on its PYTHONPATH", flush=True)
    if on_gpu:
        arch, note = deepspeed_arch_list(environ.get("TORCH_CUDA_ARCH_LIST"))
        if note:
            extra["TORCH_CUDA_ARCH_LIST"] = arch  # type: ignore[assignment]
            print(f"[deepspeed] {note}", flush=True)
    return extra
