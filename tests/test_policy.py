import pytest

from leafe_recipe.context import backend_settings, make_policy
from leafe_recipe.policy import Sampling, cut_at_stop
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


def test_a_sample_depends_on_its_prompt_and_its_seed_only(tiny_model):
    """Not on the batch it is drawn in, its place there, or what the policy drew before."""
    from leafe_recipe.envs.base import get_family
    from leafe_recipe.prompts import build_messages

    sokoban = get_family("sokoban")
    room = build_messages(sokoban.system_prompt, [sokoban.make(max_steps=12).reset(sokoban.tasks("test", 1)[0])], [])
    policy = HFPolicy(tiny_model, max_batch_size=3)
    requests = [Sampling(max_new_tokens=16, seed=seed) for seed in range(8)]
    alone = [policy.generate([room], r)[0] for r in requests]
    together = policy.generate([room, CONV] * 8, [r for r in requests for _ in range(2)])[0::2]
    reversed_ = policy.generate([room] * 8, requests[::-1])[::-1]
    assert alone == together == reversed_
    assert len({c.text for c in alone}) > 1  # different seeds, different samples


def test_request_seeds_follow_what_the_request_is():
    s = Sampling(seed=7)
    assert s.for_request("episode", "sokoban", "test-1", 0, 3) == s.for_request("episode", "sokoban", "test-1", 0, 3)
    assert s.for_request("episode", "sokoban", "test-1", 0, 3).seed != s.for_request("episode", "sokoban", "test-1", 1, 3).seed
    assert Sampling(seed=8).for_request("x").seed != s.for_request("x").seed


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
        make_policy(tiny_model, backend_settings("vllm"))


def test_unknown_backend_is_an_error():
    with pytest.raises(ValueError, match="unknown backend 'jax'"):
        make_policy("tiny", {"name": "jax"})


def test_a_checkpoints_own_sampling_knobs_are_neutralised(tiny_model, tmp_path):
    """transformers would apply a generation_config's repetition penalty; vLLM would not."""
    from transformers import AutoModelForCausalLM, AutoTokenizer

    model = AutoModelForCausalLM.from_pretrained(tiny_model)
    model.generation_config.repetition_penalty = 1.05
    model.save_pretrained(tmp_path)
    AutoTokenizer.from_pretrained(tiny_model).save_pretrained(tmp_path)
    assert HFPolicy(str(tmp_path)).model.generation_config.repetition_penalty == 1.0


def plain_qwen3(tmp_path, tiny_model) -> str:
    """A small random Qwen3 (full attention in every layer, unlike the tiny model's sliding window)
    with the tiny model's tokenizer: the prefix cache applies to it."""
    from transformers import AutoTokenizer, Qwen3Config, Qwen3ForCausalLM

    tokenizer = AutoTokenizer.from_pretrained(tiny_model)
    torch_seed = __import__("torch").manual_seed(0)  # noqa: F841
    config = Qwen3Config(vocab_size=len(tokenizer), hidden_size=64, intermediate_size=128, num_hidden_layers=2, num_attention_heads=4,
                         num_key_value_heads=2, head_dim=16, max_position_embeddings=8192, tie_word_embeddings=True,
                         eos_token_id=tokenizer.eos_token_id, pad_token_id=tokenizer.pad_token_id)  # fmt: skip
    Qwen3ForCausalLM(config).save_pretrained(tmp_path / "qwen3")
    tokenizer.save_pretrained(tmp_path / "qwen3")
    return str(tmp_path / "qwen3")


def test_the_next_turn_of_a_conversation_reuses_its_last_turns_states_and_answers_as_without(tmp_path, tiny_model):
    model = plain_qwen3(tmp_path, tiny_model)
    cached, plain = HFPolicy(model), HFPolicy(model, prefix_cache=False)
    firsts = [[*CONV[:1], {"role": "user", "content": f"Room {i}: " + "#_P_#" * (3 + 4 * i)}] for i in range(3)]
    requests = [Sampling(max_new_tokens=6, seed=i) for i in range(3)]
    answers = cached.generate(firsts, requests)
    assert answers == plain.generate(firsts, requests) and cached.reused_tokens == 0
    seconds = [c + [{"role": "assistant", "content": a.text}, {"role": "user", "content": "You moved up.\n#_P_#"}] for c, a in zip(firsts, answers)]
    fresh = [*CONV[:1], {"role": "user", "content": "A new episode starts."}]  # no prefix of its own
    later = [Sampling(max_new_tokens=6, seed=10 + i) for i in range(4)]
    assert cached.generate([*seconds, fresh], later) == plain.generate([*seconds, fresh], later)
    assert cached.reused_tokens > 0  # the first turns were not computed again
    greedy = Sampling(max_new_tokens=6, temperature=0.0)
    assert cached.generate(seconds, greedy) == plain.generate(seconds, greedy)


def test_a_sliding_window_model_generates_without_the_prefix_cache(tiny_model):
    assert HFPolicy(tiny_model).cache is None and HFPolicy(tiny_model, prefix_cache=False).cache is None
