"""Chat prompts built from an episode's history.

A conversation is: system prompt, the task's first observation as the first user
turn, then alternating assistant (the raw model output, Thought and Action) and
user (environment feedback) turns. With a history window W only the last W
action/feedback pairs are kept after the first user turn, which says how many
were left out, so long episodes fit short context windows.
"""

from __future__ import annotations

from leafe_recipe.policy import Message


def build_messages(
    system: str,
    observations: list[str],
    actions: list[str],
    window: int | None = None,
) -> list[Message]:
    """Messages for choosing action len(actions)+1 given o_0..o_t and a_1..a_t.

    `observations` has one more entry than `actions` (o_0 comes from reset).
    `window=None` keeps the whole history.
    """
    if len(observations) != len(actions) + 1:
        raise ValueError(f"need one more observation than actions, got {len(observations)} and {len(actions)}")
    keep = len(actions) if window is None else min(window, len(actions))
    omitted = len(actions) - keep
    first = observations[0]
    if omitted:
        first += f"\n\n[Steps 1-{omitted} are omitted; the last {keep} steps follow.]"
    messages: list[Message] = [{"role": "system", "content": system}, {"role": "user", "content": first}]
    for i in range(omitted, len(actions)):
        messages.append({"role": "assistant", "content": actions[i]})
        messages.append({"role": "user", "content": observations[i + 1]})
    return messages
