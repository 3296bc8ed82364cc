"""The token sequence of a multi-turn GRPO episode, built so that the prompt of every step is,
token for token, the prompt the policy is evaluated with.

GRPO trains on one sequence per episode: the first prompt, then each action's tokens (the
loss covers them) and the environment's answer (masked out). The evaluation (`leafe-agent`,
LEAFE's rollouts) prompts step t with the tokenizer's chat template applied to
`prompts.build_messages(system, o_0..o_t, a_1..a_t, window=None)`: the whole history. So the
tokens appended after action t are exactly those that turn "prompt of step t + action t"
into the prompt of step t+1 (the end of the assistant turn, the user turn with the
feedback, the next assistant header): the difference of the two renderings. GRPO therefore
runs only with the whole history as the run's prompt protocol (baselines/grpo/__init__.py),
and the OpenRLHF agent and the TRL engine share this one builder.
"""

from __future__ import annotations

from leafe_recipe.prompts import build_messages


class TemplateMismatch(RuntimeError):
    """The tokenizer's chat template does not render a conversation as a prefix of its continuation."""


class ChatTurns:
    def __init__(self, tokenizer, system: str):
        self.tokenizer, self.system = tokenizer, system

    def render(self, observations: list[str], actions: list[str]) -> str:
        messages = build_messages(self.system, observations, actions, None)
        return self.tokenizer.apply_chat_template(messages, add_generation_prompt=True, tokenize=False)

    def ids(self, text: str) -> list[int]:
        return self.tokenizer(text, add_special_tokens=False)["input_ids"]

    def first(self, observation: str) -> list[int]:
        """The prompt of step 1."""
        return self.ids(self.render([observation], []))

    def feedback(self, observations: list[str], actions: list[str], action_ids: list[int]) -> list[int]:
        """After the tokens of the last action (`action_ids`, decoded as `actions[-1]`), the tokens
        that complete the prompt of the next step; `observations` ends with the action's answer."""
        before = self.render(observations[:-1], actions[:-1])
        after = self.render(observations, actions)
        if not after.startswith(before):
            raise TemplateMismatch(
                "the chat template does not render a conversation as a prefix of its continuation, so a multi-turn "
                "episode cannot be one token sequence whose every prompt is the evaluation prompt"
            )
        body = after[len(before) :]
        generated = self.tokenizer.decode(action_ids, skip_special_tokens=False)
        for done in (generated, actions[-1]):  # with its end-of-turn token, or cut off before it
            if body.startswith(done):
                return self.ids(body[len(done) :])
        raise TemplateMismatch(
            f"the chat template renders the action {actions[-1][:80]!r} differently from how it was generated "
            f"({body[:80]!r}); the training prompts would not be the evaluation prompts"
        )
