import json
import shlex
import subprocess
import sys
from pathlib import Path
from types import SimpleNamespace

import pytest

from helpers import sft_config
from leafe_recipe import gpu
from leafe_recipe.gpu import STAND_IN
from leafe_recipe.train import (
    SFTConfig,
    TrainingError,
    leafe_mixture,
    merge_command,
    sft_command,
    train,
)

SYSTEM = {"role": "system", "content": "You push boxes onto targets. Answer with one move."}


def write_sft(path: Path, n: int, tag: str) -> Path:
    """OpenRLHF SFT JSONL as leafe_recipe.distill writes it: a history and the one action to learn."""
    with open(path, "w") as f:
        for i in range(n):
            prompt = [SYSTEM, {"role": "user", "content": f"{tag} board {i}: #@$.#"}]
            if i % 2:  # multi-turn histories too
                prompt += [{"role": "assistant", "content": "Action: up"}, {"role": "user", "content": "blocked"}]
            f.write(json.dumps({"prompt": prompt, "response": [{"role": "assistant", "content": f"Action: left {i}"}]}))
            f.write("\n")
    return path


@pytest.fixture
def d_cf(tmp_path):
    return write_sft(tmp_path / "d_cf.jsonl", 8, "cf")  # 4 micro-batches: 2 optimizer steps


@pytest.fixture
def d_reh(tmp_path):
    return write_sft(tmp_path / "d_reh.jsonl", 4, "reh")


def test_mixture_probabilities_come_from_beta(d_cf, d_reh, tmp_path):
    datasets, probs = leafe_mixture(d_cf, d_reh, beta=0.5)
    assert datasets == [str(d_cf), str(d_reh)]
    assert probs == pytest.approx([2 / 3, 1 / 3])  # L_cf + 0.5 L_reh, up to a constant
    assert leafe_mixture(d_cf, d_reh, beta=1.0)[1] == [0.5, 0.5]
    assert leafe_mixture(d_cf, d_reh, beta=0.0) == ([str(d_cf)], None)
    empty = tmp_path / "empty.jsonl"
    empty.touch()
    assert leafe_mixture(d_cf, empty, beta=0.5) == ([str(d_cf)], None)  # nothing to draw from
    with pytest.raises(ValueError):
        leafe_mixture(empty, empty, beta=0.5)
    with pytest.raises(ValueError):
        leafe_mixture(d_cf, d_reh, beta=-1)


@pytest.mark.parametrize("flash", [True, False], ids=["flash-attn imports", "no flash-attn"])
def test_gpu_command_is_openrlhfs_deepspeed_launch_with_dotted_flags(flash, monkeypatch):
    monkeypatch.setattr(gpu, "flash_attn", lambda: gpu.FlashAttn(flash, "stated by the test"))
    cfg = sft_config(model="Qwen/Qwen2.5-1.5B-Instruct", datasets=["cf.jsonl", "reh.jsonl"],
                    dataset_probs=[2 / 3, 1 / 3], output_dir="/ckpt/leafe")  # fmt: skip
    assert sft_command(cfg, num_gpus=8) == [
        str(Path(sys.executable).parent / "deepspeed"), "--num_gpus", "8", "--module", "openrlhf.cli.train_sft",
        "--model.model_name_or_path", "Qwen/Qwen2.5-1.5B-Instruct",
        "--data.dataset", "cf.jsonl,reh.jsonl",
        "--data.input_key", "prompt",
        "--data.output_key", "response",
        "--data.apply_chat_template",
        "--data.max_len", "4096",
        "--adam.lr", "1e-06",
        "--train.max_epochs", "2",
        "--train.batch_size", "128",
        "--train.micro_batch_size", "8",
        "--train.seed", "42",
        "--ds.zero_stage", "2",
        "--ds.param_dtype", "bf16",
        "--ds.attn_implementation", "flash_attention_2" if flash else "sdpa",
        "--ckpt.output_dir", "/ckpt/leafe",
        "--data.dataset_probs", f"{2 / 3},{1 / 3}",
    ]  # fmt: skip


def test_cpu_command_runs_this_module_with_sdpa_and_every_option():
    cfg = sft_config(model="/models/base", datasets=["cf.jsonl"], output_dir="out", learning_rate=1e-3, epochs=1,
                    train_batch_size=4, micro_train_batch_size=2, max_len=256, zero_stage=0, lora_rank=4,
                    lora_alpha=8, target_modules=["q_proj", "v_proj"], gradient_checkpointing=True, seed=7,
                    bf16=False, max_samples=100, extra_args=["--max_norm", "0.5"])  # fmt: skip
    assert sft_command(cfg, num_gpus=0) == [
        sys.executable, "-m", "leafe_recipe.train",
        "--model.model_name_or_path", "/models/base",
        "--data.dataset", "cf.jsonl",
        "--data.input_key", "prompt",
        "--data.output_key", "response",
        "--data.apply_chat_template",
        "--data.max_len", "256",
        "--adam.lr", "0.001",
        "--train.max_epochs", "1",
        "--train.batch_size", "4",
        "--train.micro_batch_size", "2",
        "--train.seed", "7",
        "--ds.zero_stage", "0",
        "--ds.param_dtype", "fp16",
        "--ds.attn_implementation", "sdpa",
        "--ckpt.output_dir", str(Path("out") / "lora_adapter"),
        "--data.max_samples", "100",
        "--model.gradient_checkpointing_enable",
        "--ds.lora.rank", "4", "--ds.lora.alpha", "8",
        "--ds.lora.target_modules", "q_proj", "v_proj",
        "--max_norm", "0.5",
    ]  # fmt: skip
    assert merge_command(cfg) == [
        sys.executable, "-m", "openrlhf.cli.lora_combiner",
        "--model_path", "/models/base",
        "--lora_path", str(Path("out") / "lora_adapter"),
        "--output_path", "out",
        "--ds.param_dtype", "fp16",
    ]  # fmt: skip
    with pytest.raises(ValueError):
        sft_config(model="m", datasets=["a", "b"], dataset_probs=[1.0], output_dir="out")


def test_an_arch_list_deepspeed_cannot_read_stops_the_gpu_launch_before_it_starts(tmp_path, monkeypatch):
    from leafe_recipe.gpu import ArchListError

    monkeypatch.setenv("TORCH_CUDA_ARCH_LIST", "Hopper")
    cfg = sft_config(model="m", datasets=["cf.jsonl"], output_dir=str(tmp_path / "ckpt"))
    with pytest.raises(ArchListError, match="'Hopper'"):
        train(cfg, num_gpus=1, check=False)
    assert (tmp_path / "ckpt" / "train.log").read_text() == ""  # nothing was launched


def test_flash_attn_stand_in_imports_but_refuses_to_run():
    code = (
        f"import sys; sys.path.insert(0, {str(STAND_IN)!r})\n"
        "from flash_attn.bert_padding import index_first_axis, pad_input, rearrange, unpad_input\n"
        "from flash_attn.utils.distributed import all_gather\n"
        "try:\n    import flash_attn.ops\nexcept ImportError:\n    print('no ops')\n"  # OpenRLHF's fallback
        "pad_input(None)\n"
    )
    run = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert run.stdout == "no ops\n"
    assert "flash_attn.bert_padding.pad_input was called" in run.stderr
    assert "stand-in for flash-attn" in run.stderr


def test_sft_dataset_masks_only_the_response(tiny_model, d_cf):
    from datasets import load_dataset
    from openrlhf.datasets import SFTDataset
    from transformers import AutoTokenizer

    tokenizer = AutoTokenizer.from_pretrained(tiny_model)
    args = SimpleNamespace(data=SimpleNamespace(input_key="prompt", output_key="response", apply_chat_template=True,
                                                tokenizer_chat_template=None))  # fmt: skip
    data = load_dataset("json", data_files=str(d_cf))["train"]
    dataset = SFTDataset(data, tokenizer, 512, SimpleNamespace(args=args), input_template=None, num_processors=1)
    assert len(dataset) == len(data)
    for record, (input_ids, _, loss_mask) in zip(data, dataset):
        ids, mask = input_ids[0], loss_mask[0]
        # position i of the mask weighs the prediction of token i + 1 (the trainer shifts by one)
        predicted = mask[:-1].bool()
        first = int(predicted.nonzero()[0]) + 1
        assert predicted[first - 1 :].all() and not predicted[: first - 1].any()  # one contiguous tail
        prompt = tokenizer.apply_chat_template(record["prompt"], tokenize=False, add_generation_prompt=True)
        assert tokenizer.decode(ids[:first]) == prompt
        assert tokenizer.decode(ids[first:]) == record["response"][0]["content"] + tokenizer.eos_token


def small_run(tiny_model: str, datasets: list[str], output_dir: Path, **overrides) -> SFTConfig:
    """A few optimizer steps of the tiny model: 1 epoch, micro batch 2, global batch 4 (the first
    step has lr 0, the start of the warmup, so a run needs two)."""
    settings = dict(learning_rate=1e-3, epochs=1, train_batch_size=4, micro_train_batch_size=2, max_len=256)
    return sft_config(model=tiny_model, datasets=datasets, output_dir=str(output_dir), **{**settings, **overrides})


def changed_parameters(before: str | Path, after: str | Path) -> list[str]:
    """Names of the parameters that differ, compared at the trained checkpoint's precision."""
    from transformers import AutoModelForCausalLM

    trained = AutoModelForCausalLM.from_pretrained(after).state_dict()
    initial = AutoModelForCausalLM.from_pretrained(before).state_dict()
    return [name for name, w in trained.items() if not w.equal(initial[name].to(w.dtype))]


@pytest.mark.slow
def test_cpu_sft_of_two_mixed_files_writes_a_loadable_checkpoint(tiny_model, d_cf, d_reh, tmp_path):
    from transformers import AutoModelForCausalLM, AutoTokenizer

    datasets, probs = leafe_mixture(d_cf, d_reh, beta=0.5)
    cfg = small_run(tiny_model, datasets, tmp_path / "ckpt", dataset_probs=probs)
    out = train(cfg, num_gpus=0)
    assert out == tmp_path / "ckpt"
    AutoModelForCausalLM.from_pretrained(out)
    tokenizer = AutoTokenizer.from_pretrained(out)
    assert tokenizer.apply_chat_template([SYSTEM], tokenize=False).startswith("<|im_start|>system")
    assert len(changed_parameters(tiny_model, out)) > 10
    log = (out / "train.log").read_text()
    assert log.startswith("$ " + shlex.join(sft_command(cfg, 0)))
    assert f"$ export PYTHONPATH={STAND_IN}" in log  # no flash-attn here: the stand-in satisfies OpenRLHF's import
    assert "Train step of epoch 0" in log


@pytest.mark.slow
def test_a_failed_run_raises_with_openrlhfs_message_and_the_command(tiny_model, d_cf, tmp_path):
    cfg = small_run(tiny_model, [str(d_cf)], tmp_path / "ckpt", extra_args=["--train.no_such_flag", "1"])
    with pytest.raises(TrainingError) as failure:
        train(cfg, num_gpus=0)
    text = str(failure.value)
    assert shlex.join(sft_command(cfg, 0)) in text
    assert "unrecognized arguments: --train.no_such_flag" in text.split("its last output")[1]  # OpenRLHF's own words
    assert failure.value.returncode != 0


@pytest.mark.slow
def test_lora_run_is_merged_into_one_checkpoint(tiny_model, d_cf, tmp_path):
    from transformers import AutoModelForCausalLM

    out = train(small_run(tiny_model, [str(d_cf)], tmp_path / "ckpt", lora_rank=4, learning_rate=1e-2), num_gpus=0)
    model = AutoModelForCausalLM.from_pretrained(out)  # a plain model: no adapter left to apply
    assert not any("lora" in name for name in model.state_dict())
    assert changed_parameters(tiny_model, out)
    assert (out / "lora_adapter" / "adapter_config.json").exists()


def test_the_batch_check_counts_the_examples_openrlhf_trains_on(tiny_model, tmp_path):
    """Examples per epoch as OpenRLHF's blending_datasets mixes the files and its SFTDataset then
    drops the records whose prompt is too long for max_len: the same count, through its own code."""
    from types import SimpleNamespace

    from openrlhf.datasets import SFTDataset
    from openrlhf.datasets.utils import blending_datasets
    from transformers import AutoTokenizer

    from leafe_recipe.train import TrainingDataError, check_batch, data_per_epoch

    def record(chars):
        return json.dumps({"prompt": [{"role": "user", "content": "x" * chars}], "response": [{"role": "assistant", "content": "y"}]})

    cf, reh = tmp_path / "cf.jsonl", tmp_path / "reh.jsonl"
    cf.write_text("".join(record(10 if i % 3 else 400) + "\n" for i in range(7)))  # 3 of 7 too long for 256
    reh.write_text("".join(record(20) + "\n" for _ in range(30)))
    tokenizer = AutoTokenizer.from_pretrained(tiny_model)
    args = SimpleNamespace(use_ms=False, data=SimpleNamespace(input_key="prompt", output_key="response", apply_chat_template=True))
    strategy = SimpleNamespace(print=lambda *a: None, is_rank_0=lambda: False, args=args)
    for probs in ([0.5, 0.5], [0.25, 0.75], None):
        cfg = sft_config(model=tiny_model, datasets=[str(cf), str(reh)], output_dir=str(tmp_path), dataset_probs=probs, max_len=256)
        blended = blending_datasets(f"{cf},{reh}", probs and ",".join(map(str, probs)), strategy, cfg.seed)
        kept = SFTDataset(blended, tokenizer, cfg.max_len, strategy, num_processors=1)
        assert data_per_epoch(cfg) == (len(blended), len(kept)), probs
    cfg = sft_config(model=tiny_model, datasets=[str(cf)], output_dir=str(tmp_path), max_len=256, train_batch_size=8, micro_train_batch_size=4)
    with pytest.raises(TrainingDataError, match=r"4 training examples per epoch .*3 of 7 of them dropped as longer than method.sft.max_len=256.* one batch of 8"):
        check_batch(cfg, world_size=1)
    small = sft_config(model=tiny_model, datasets=[str(cf)], output_dir=str(tmp_path), max_len=256, train_batch_size=4, micro_train_batch_size=2)
    assert check_batch(small, 1) == 4
