"""Early Experience's Self-Reflection: at an expert state, the policy is shown the expert's
action and the alternatives with what each led to, and explains why the expert's action is
the better one; the rationale followed by the expert's answer becomes an SFT target for the
policy's own prompt at that state, mixed with the expert data.

The prompt follows the paper's (its section 4.3). A rationale whose conclusion is not the
expert's action is dropped (the paper's filter); where the environment can tell what action
an answer amounts to (`EnvFamily.action_key`), that means the action the rationale ends on
must be the expert's, else (coding) only empty rationales are dropped.
"""

from __future__ import annotations

from typing import Any

from leafe_recipe.envs.base import EnvFamily
from leafe_recipe.policy import Policy, Sampling
from leafe_recipe.prompts import build_messages

REFLECTION_SYSTEM = "You explain the decisions of an agent acting in an environment."
REFLECTION_REQUEST = (
    "You will be presented with a situation where you need to choose between multiple possible actions. Your task "
    "is to analyze the situation and provide reasoning about why we decide to take the expert action.\n\n"
    "Situation:\n{situation}\n\nExpert action:\n{expert}\nOutcome of the expert action:\n{outcome}\n\n{alternatives}\n\n"
    "Write a short monologue explaining why the expert action is the better choice in this situation, comparing it "
    "with what the alternatives led to. End with the expert action, written as the agent writes its actions."
)


def prompt(state, window: int | None) -> list[dict[str, str]]:
    """The reflection prompt at an expert state (the situation as the policy sees it)."""
    shown = build_messages("", state.observations[: state.i + 1], state.actions[: state.i], window)[1:]
    situation = "\n\n".join(("Agent: " if m["role"] == "assistant" else "") + m["content"] for m in shown)
    expert, outcome = state.expert
    alternatives = "\n\n".join(
        f"Alternative {j}:\n{action}\nOutcome:\n{observation}" for j, (action, observation) in enumerate(state.alternatives, 1)
    )
    request = REFLECTION_REQUEST.format(situation=situation, expert=expert, outcome=outcome, alternatives=alternatives)
    return [{"role": "system", "content": REFLECTION_SYSTEM}, {"role": "user", "content": request}]


def records(
    family: EnvFamily, states, window: int | None, policy: Policy, sampling: Sampling, ledger
) -> tuple[list[dict[str, Any]], dict[str, int]]:
    """The policy reflects at every state that has alternatives (one generate call); the kept
    rationales become targets for the policy's prompt at that state."""
    todo = [s for s in states if s.alternatives]
    requests = [sampling.for_request("rationale", s.task.env, s.task.id, s.i) for s in todo]
    out = policy.generate([prompt(s, window) for s in todo], requests) if todo else []
    ledger.model_calls += len(out)
    ledger.gen_tokens += sum(c.num_tokens for c in out)
    key = family.action_key
    stats = {"reflections": len(out), "kept": 0, "dropped_other_conclusion": 0, "dropped_empty": 0}
    data = []
    for state, completion in zip(todo, out):
        rationale = completion.text.strip()
        expert = state.actions[state.i]
        if not rationale:
            stats["dropped_empty"] += 1
            continue
        if key is not None and key(rationale) != key(expert):
            stats["dropped_other_conclusion"] += 1
            continue
        stats["kept"] += 1
        messages = build_messages(family.system_prompt, state.observations[: state.i + 1], state.actions[: state.i], window)
        data.append(
            {
                "prompt": messages,
                "response": [{"role": "assistant", "content": f"{rationale}\n{expert}"}],
                "task": f"{state.task.env}/{state.task.id}",
                "step": state.i + 1,
            }
        )
    return data, stats
