"""Early Experience's Implicit World Modeling: the policy learns to predict what the
environment answers to an action, at the expert's states, for the alternatives and for the
expert's own action (the paper's ALFWorld and WebShop data include the expert transitions).

A record's prompt is the policy's own prompt at that state (system prompt, history window)
under a world-model system prompt, with the action to predict appended to the last user
turn; its target is the environment's next observation. The paper trains one epoch of this,
then imitation from that checkpoint so that the total number of updates equals the imitation
budget (its section 5.1); `imitation_epochs` chooses the second stage's epochs that come
closest (at least one).
"""

from __future__ import annotations

from typing import Any

from leafe_recipe.prompts import build_messages
from leafe_recipe.train import SFTConfig, data_per_epoch

WORLD_MODEL_SYSTEM = (
    "You are a world model of the environment below. Given the interaction so far and a proposed action, "
    "predict the environment's response to that action, exactly as the environment would write it."
)


def records(system: str, states, window: int | None) -> list[dict[str, Any]]:
    """One record per (state, action) pair: the alternatives and the expert's action."""
    out = []
    for s in states:
        for action, observation in [s.expert, *s.alternatives]:
            prompt = build_messages(f"{WORLD_MODEL_SYSTEM}\n\n{system}", s.observations[: s.i + 1], s.actions[: s.i], window)
            prompt[-1] = {"role": "user", "content": f"{prompt[-1]['content']}\n\nProposed action:\n{action}\n\nPredict the environment's response."}
            out.append({"prompt": prompt, "response": [{"role": "assistant", "content": observation}], "task": f"{s.task.env}/{s.task.id}", "step": s.i + 1})
    return out


def imitation_epochs(world_model: SFTConfig, imitation: SFTConfig) -> int:
    """Epochs of the imitation stage so that both stages' updates add up to the imitation
    budget (`imitation.epochs` epochs of imitation alone), at least one."""
    per_epoch = max(1, data_per_epoch(imitation)[1] // imitation.train_batch_size)
    world_steps = world_model.epochs * max(1, data_per_epoch(world_model)[1] // world_model.train_batch_size)
    return max(1, round((imitation.epochs * per_epoch - world_steps) / per_epoch))


