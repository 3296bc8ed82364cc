import pytest

from leafe_recipe.policy import BackendConfig, Sampling, cut_at_stop, make_policy
from leafe_recipe.policy.hf import HFPolicy

CONV = [{"role": "system", "content": "You play Sokoban."}, {"role": "user", "content": "Move."}]


def test_one_call_returns_one_completion_per_conversation(tiny_model):
    policy = HFPolicy(tiny_model, max_batch_size=3)  # 7 conversations -> 3 chunks, one call
    convs = [CONV + [{"role": "assistant", "content": "x" * i}, {"role": "user", "content": "ok"}] for i in range(6)]
    out = policy.generate([CONV] + convs, Sampling(max_new_tokens=12))
    assert len(out) == 7
    assert all(0 < c.num_tokens <= 12 for c in out)
    assert all(c.truncated == (c.num_tokens == 12) for c in out)


def test_each_conversation_can_carry_its_own_sampling(tiny_model):
    short, long = Sampling(max_new_tokens=2, temperature=0.0), Sampling(max_new_tokens=5, temperature=0.0)
    out = HFPolicy(tiny_model).generate([CONV, CONV, CONV], [long, short, long])
    assert [c.num_tokens for c in out] == [5, 2, 5]
    assert out[0] == out[2]  # greedy: the same prompt gives the same text


def test_same_seed_same_samples(tiny_model):
    s = Sampling(max_new_tokens=16, seed=3)
    a = HFPolicy(tiny_model).generate([CONV] * 4, s)
    b = HFPolicy(tiny_model).generate([CONV] * 4, s)
    assert a == b
    assert len({c.text for c in a}) > 1  # the samples of one prompt differ from each other


def test_tokenizer_chat_template_and_byte_level_round_trip(tiny_model):
    tok = HFPolicy(tiny_model).tokenizer
    text = tok.apply_chat_template(CONV, add_generation_prompt=True, tokenize=False)
    assert text.endswith("<|im_start|>assistant\n")
    ids = tok("Action: left ✓", add_special_tokens=False)["input_ids"]
    assert tok.decode(ids) == "Action: left ✓"


def test_stop_strings_are_cut_off_like_vllm():
    assert cut_at_stop("Thought: x\nAction: up\nObs", ("\nObs", "</s>")) == ("Thought: x\nAction: up", True)
    assert cut_at_stop("abc", ()) == ("abc", False)


def test_vllm_backend_without_vllm_or_gpu_says_what_to_do(tiny_model):
    with pytest.raises(RuntimeError, match="backend=vllm needs vLLM and a CUDA GPU.*use backend=hf"):
        make_policy(tiny_model, BackendConfig(name="vllm"))


def test_unknown_backend_is_an_error():
    with pytest.raises(ValueError, match="unknown backend 'jax'"):
        make_policy("tiny", BackendConfig(name="jax"))


def test_a_checkpoints_own_sampling_knobs_are_neutralised(tiny_model, tmp_path):
    """transformers would apply a generation_config's repetition penalty; vLLM would not."""
    from transformers import AutoModelForCausalLM, AutoTokenizer

    model = AutoModelForCausalLM.from_pretrained(tiny_model)
    model.generation_config.repetition_penalty = 1.05
    model.save_pretrained(tmp_path)
    AutoTokenizer.from_pretrained(tiny_model).save_pretrained(tmp_path)
    assert HFPolicy(str(tmp_path)).model.generation_config.repetition_penalty == 1.0
