"""Chat prompts built from an episode's history, and LEAFE's reflection prompt and its parsing.

A conversation is: system prompt, the task's first observation as the first user
turn, then alternating assistant (the raw model output, Thought and Action) and
user (environment feedback) turns. With a history window W only the last W
action/feedback pairs are kept after the first user turn, which says how many
were left out, so long episodes fit short context windows.

In a LEAFE branch the experience (a diagnosis and fix from reflection) is appended
to the latest user turn, right where the next action is decided. Distillation
builds the same prompt without it.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass

Message = dict[str, str]  # an OpenAI-style chat message: {"role": ..., "content": ...}

EXPERIENCE_HEADER = "Experience from an earlier attempt at this task"

def build_messages(
    system: str,
    observations: list[str],
    actions: list[str],
    window: int | None = None,
    experience: str | None = None,
) -> list[Message]:
    """Messages for choosing action len(actions)+1 given o_0..o_t and a_1..a_t.

    `observations` has one more entry than `actions` (o_0 comes from reset).
    `window=None` keeps the whole history. With an experience, the prompt says which step this
    is: an experience names its step ("At step 3, ...") and a windowed history hides the count,
    so a branch could not tell the step to change from the ones after it (measured on the micro
    model: without it, the hinted move was repeated at the next step 40% of the time vs 5%).
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
    if experience is not None:
        messages[-1] = {"role": "user", "content": f"{messages[-1]['content']}\n\nThis is step {len(actions) + 1}.\n{EXPERIENCE_HEADER}: {experience}"}
    return messages


REFLECTION_SYSTEM = (
    "You review an agent's attempt at a task to find where it went wrong. You are given the task, "
    "every action the agent took and the environment's feedback to it."
)

REFLECTION_REQUEST = """{outcome}

Find the earliest step whose action sent the attempt the wrong way: going back to that step and acting
differently there should lead to success. Then write the experience: one or two sentences saying what
went wrong and what to do instead at that step. Answer in exactly this format:
Rollback step: <a step number from 1 to {t}{none}>
Experience: <what went wrong and what to do instead>"""


def build_reflection(observations: list[str], actions: list[str], finished: bool) -> list[Message]:
    """The reflection prompt over a whole history h_t (no window: the mistake may be early).

    `finished` episodes failed and must name a step; a periodic check of a live
    episode may answer `none` when the attempt is on track.
    """
    steps = "\n\n".join(
        f"Step {i}\nAction: {a}\nFeedback: {o}" for i, (a, o) in enumerate(zip(actions, observations[1:]), start=1)
    )
    t = len(actions)
    outcome = (
        f"The attempt failed after {t} steps." if finished else f"The attempt is still going after {t} steps."
    )
    request = REFLECTION_REQUEST.format(outcome=outcome, t=t, none="" if finished else ", or none if it is on track")
    return [
        {"role": "system", "content": REFLECTION_SYSTEM},
        {"role": "user", "content": f"Task:\n{observations[0]}\n\n{steps}\n\n{request}"},
    ]


@dataclass(frozen=True)
class Reflection:
    """A parsed reflection: `tau` is the 1-based step to revise (None: no rollback asked for)."""

    tau: int | None
    experience: str
    parsed: bool  # False: the answer had no usable step and experience; recorded, never raised
    clamped: bool  # tau was outside 1..t and was moved to the nearest end


_STEP = re.compile(r"rollback[ _]?step\W*(?:step\s*)?(\d+|none)", re.IGNORECASE)
_EXPERIENCE = re.compile(r"experience\s*:\s*(.+)", re.IGNORECASE | re.DOTALL)
_TAGS = re.compile(r"<step>\s*(\d+|none)\s*</step>.*?<experience>(.*?)</experience>", re.IGNORECASE | re.DOTALL)
MAX_EXPERIENCE_CHARS = 1000


def parse_reflection(text: str, t: int) -> Reflection:
    """Read `Rollback step: N / Experience: ...`, `<step>N</step><experience>...</experience>`
    or JSON `{"rollback_step": N, "experience": ...}`; clamp N into 1..t."""
    step, experience = _json_reflection(text)
    if step is None and (m := _TAGS.search(text)):
        step, experience = m.group(1), m.group(2)
    elif step is None and (m := _STEP.search(text)):
        step = m.group(1)
        if e := _EXPERIENCE.search(text[m.end() :]):
            experience = e.group(1)
    experience = (experience or "").strip()[:MAX_EXPERIENCE_CHARS]
    if step is None:
        return Reflection(None, experience, parsed=False, clamped=False)
    if str(step).lower() == "none":
        return Reflection(None, experience, parsed=True, clamped=False)
    if not experience:
        return Reflection(None, "", parsed=False, clamped=False)
    tau = int(step)
    return Reflection(min(max(tau, 1), t), experience, parsed=True, clamped=not 1 <= tau <= t)


def _json_reflection(text: str) -> tuple[str | None, str | None]:
    start, end = text.find("{"), text.rfind("}")
    if start < 0 or end <= start:
        return None, None
    try:
        obj = json.loads(text[start : end + 1])
    except json.JSONDecodeError:
        return None, None
    if not isinstance(obj, dict):
        return None, None
    step = obj.get("rollback_step", obj.get("step"))
    step = str(step).strip() if isinstance(step, (int, str)) else ""
    if not (step.isdigit() or step.lower() == "none"):
        return None, None
    experience = obj.get("experience")
    return step, experience if isinstance(experience, str) else None


def refinement_experience(actions: list[str], last_feedback: str, action_key=None) -> str:
    """The experience of an iterative-refinement retry (the paper's Table 3 baseline): what the
    previous attempt did and the feedback it ended with, with no diagnosis and no rollback."""
    moves = [action_key(a) for a in actions] if action_key is not None else []
    did = f" Its actions: {', '.join(m or 'invalid' for m in moves)}." if moves else ""
    text = f"The previous attempt failed after {len(actions)} steps.{did} Its last feedback: {last_feedback.strip()}"
    return text[:MAX_EXPERIENCE_CHARS]


PLAYBOOK_HEADER = "Playbook of strategies learned from earlier attempts (entry ids in brackets; cite the ones you use)"


def with_playbook(system: str, playbook: str | None) -> str:
    """The system prompt with an ACE playbook (baselines/ace) after it; unchanged without one."""
    return system if not playbook or not playbook.strip() else f"{system}\n\n{PLAYBOOK_HEADER}:\n{playbook.strip()}"
