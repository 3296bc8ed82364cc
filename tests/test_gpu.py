"""leafe_recipe.gpu: the attention choice with flash_attn present, absent, broken or the stand-in,
and TORCH_CUDA_ARCH_LIST as DeepSpeed 0.19.6's op builder reads it."""

import os
import sys

import pytest

from leafe_recipe import gpu
from leafe_recipe.gpu import (
    FLASH,
    SDPA,
    STAND_IN,
    ArchListError,
    AttentionUnavailable,
    choose_attention,
    deepspeed_arch_list,
    openrlhf_env,
)


@pytest.fixture
def flash_attn_package(tmp_path, monkeypatch):
    """Make a `flash_attn` package with the given __init__ the one `import flash_attn` finds."""

    def install(source: str) -> None:
        package = tmp_path / "site" / "flash_attn"
        package.mkdir(parents=True)
        (package / "__init__.py").write_text(source)
        monkeypatch.syspath_prepend(str(package.parent))
        gpu.flash_attn.cache_clear()

    monkeypatch.delitem(sys.modules, "flash_attn", raising=False)
    gpu.flash_attn.cache_clear()
    yield install
    sys.modules.pop("flash_attn", None)
    gpu.flash_attn.cache_clear()


def test_without_flash_attn_every_caller_gets_sdpa_and_openrlhf_the_stand_in(flash_attn_package, capsys):
    assert gpu.flash_attn().importable is False  # this machine has no flash-attn
    assert choose_attention(None, on_gpu=True, dtype="bf16", who="OpenRLHF SFT") == SDPA
    assert choose_attention("auto", on_gpu=True, dtype="torch.float16", who="hf backend") == SDPA
    assert capsys.readouterr().out == (
        "[attention] OpenRLHF SFT: sdpa (flash_attn is not installed)\n[attention] hf backend: sdpa (flash_attn is not installed)\n"
    )
    env = openrlhf_env(on_gpu=True, environ={"PYTHONPATH": "/elsewhere"})
    assert env == {"PYTHONPATH": f"{STAND_IN}{os.pathsep}/elsewhere"}
    assert "stand-in is on its PYTHONPATH" in capsys.readouterr().out
    with pytest.raises(AttentionUnavailable, match="flash_attention_2 needs the flash-attn package, but flash_attn is not installed"):
        choose_attention(FLASH, on_gpu=True, dtype="bf16", who="OpenRLHF SFT")
    assert choose_attention("eager", on_gpu=True, dtype="bf16", who="x") == "eager"  # a named kernel is kept


def test_with_flash_attn_a_gpu_in_half_precision_gets_it(flash_attn_package, capsys):
    flash_attn_package("__version__ = '2.8.3'\n")
    assert gpu.flash_attn().importable
    assert choose_attention(None, on_gpu=True, dtype="bf16", who="OpenRLHF SFT") == FLASH
    assert "[attention] OpenRLHF SFT: flash_attention_2 (flash_attn 2.8.3 imports)" in capsys.readouterr().out
    assert choose_attention(None, on_gpu=False, dtype="bf16", who="x") == SDPA  # no GPU
    assert choose_attention(None, on_gpu=True, dtype="float32", who="TRL GRPO") == SDPA  # flash-attn computes in half only
    assert "float32 weights" in capsys.readouterr().out
    assert choose_attention(FLASH, on_gpu=True, dtype="bf16", who="x") == FLASH
    assert openrlhf_env(on_gpu=True, environ={}) == {}  # the real package: no stand-in


def test_a_flash_attn_that_does_not_import_counts_as_absent(flash_attn_package):
    flash_attn_package("raise ImportError('flash_attn_2_cuda.so: undefined symbol: _ZN3c104cuda9SetDeviceEi')\n")
    found = gpu.flash_attn()
    assert not found.importable and "installed but does not import" in found.why and "undefined symbol" in found.why
    assert choose_attention(None, on_gpu=True, dtype="bf16", who="x") == SDPA


def test_the_stand_in_is_not_taken_for_flash_attn(monkeypatch):
    monkeypatch.delitem(sys.modules, "flash_attn", raising=False)
    monkeypatch.syspath_prepend(str(STAND_IN))
    gpu.flash_attn.cache_clear()
    try:
        assert gpu.flash_attn() == gpu.FlashAttn(False, "flash_attn is leafe-recipe's stand-in")
    finally:
        sys.modules.pop("flash_attn", None)
        gpu.flash_attn.cache_clear()


@pytest.mark.parametrize(
    "value, expected",
    [
        ("9.0a", "9.0"),  # Hopper's arch-specific form, as CUDA 12.8+ images set it
        ("8.0;9.0a+PTX", "8.0;9.0+PTX"),
        ("9.0a 10.0f 9.0", "9.0;10.0"),
        ("8.0,9.0", "8.0;9.0"),
        ("8.0;9.0+PTX", None),  # already readable: unchanged
        ("7.5 8.6", None),
        (None, None),
    ],
)
def test_the_arch_list_becomes_one_deepspeed_reads(value, expected, monkeypatch):
    """The result goes through DeepSpeed 0.19.6's own parser as FusedAdam's JIT build in the
    first optimizer step meets it (no GPU needed when the list is given), which fails on the
    original wherever it is changed."""
    from deepspeed.ops.op_builder.fused_adam import FusedAdamBuilder  # the CUDA builder, also on a CPU machine

    arch, note = deepspeed_arch_list(value)
    assert arch == (value if expected is None else expected)
    assert (note is None) == (expected is None)
    if value is None:
        return
    builder = FusedAdamBuilder()
    builder.jit_mode = True
    monkeypatch.setenv("TORCH_CUDA_ARCH_LIST", arch)
    assert builder.compute_capability_args() == []  # JIT: torch reads the list DeepSpeed wrote back
    last = arch.replace(" ", ";").split(";")[-1].split("+")[0]
    assert f"{last}+PTX" in os.environ["TORCH_CUDA_ARCH_LIST"].split(";")
    if expected is not None:
        monkeypatch.setenv("TORCH_CUDA_ARCH_LIST", value)
        with pytest.raises(ValueError, match="invalid literal for int"):  # what the SFT met on the H200 with 9.0a
            builder.compute_capability_args()


@pytest.mark.parametrize("value", ["Hopper", "sm_90", "9", "9.0;compute_90"])
def test_an_arch_list_deepspeed_cannot_read_is_refused_before_the_launch(value):
    with pytest.raises(ArchListError, match="DeepSpeed 0.19.6 cannot read"):
        deepspeed_arch_list(value)
    with pytest.raises(ArchListError):
        openrlhf_env(on_gpu=True, environ={"TORCH_CUDA_ARCH_LIST": value})
    assert "TORCH_CUDA_ARCH_LIST" not in openrlhf_env(on_gpu=False, environ={"TORCH_CUDA_ARCH_LIST": value})  # no GPU build


def test_a_normalised_arch_list_reaches_the_launch_environment(capsys):
    env = openrlhf_env(on_gpu=True, environ={"TORCH_CUDA_ARCH_LIST": "9.0a"})
    assert env["TORCH_CUDA_ARCH_LIST"] == "9.0"
    assert "[deepspeed] TORCH_CUDA_ARCH_LIST='9.0a' -> '9.0'" in capsys.readouterr().out


def test_model_dtype_reads_the_checkpoint_for_auto(tiny_model, tmp_path):
    from transformers import AutoConfig

    assert gpu.model_dtype(tiny_model, "auto") == "float32"  # the tiny model is saved in float32
    config = AutoConfig.from_pretrained(tiny_model)
    config.dtype = "bfloat16"
    config.save_pretrained(tmp_path)
    assert gpu.model_dtype(str(tmp_path), "auto") == "bfloat16"
    assert gpu.model_dtype(tiny_model, "bf16") == "bfloat16"  # a given dtype wins
