"""A scripted stand-in policy for Sokoban trees: it fails on its own, reflects as told,
and plays the solver's plan once an experience is in its prompt."""

from leafe_recipe.envs.sokoban import solve
from leafe_recipe.policy import Completion
from leafe_recipe.prompts import EXPERIENCE_HEADER, REFLECTION_SYSTEM

UNRENDER = {"#": "#", "_": " ", "O": ".", "X": "$", "√": "*", "P": "@", "S": "+"}


def grid_of(observation: str) -> list[str]:
    """The room in the observation's rendering, back in XSB rows."""
    rows = [line for line in observation.splitlines() if line and set(line) <= set(UNRENDER)]
    return ["".join(UNRENDER[c] for c in row) for row in rows]


class Scripted:
    def __init__(
        self,
        reflection: str = "Rollback step: 2\nExperience: follow the shortest plan",
        fail_after: int | None = None,
        fail_when_experienced: bool = False,
        thought: str = "use the experience.",
    ):
        self.reflection = reflection
        self.fail_after = fail_after  # raise on this call, like a run killed mid-way
        self.fail_when_experienced = fail_when_experienced  # ignore experiences: branches fail too
        self.thought = thought  # the Thought of an action taken with an experience; {experience} quotes it
        self.batches: list[list[str]] = []  # per call: "act", "act+e" or "reflect" per request

    def generate(self, conversations, sampling):
        if self.fail_after is not None and len(self.batches) == self.fail_after:
            raise KeyboardInterrupt("killed")
        kinds, out = [], []
        for conv in conversations:
            if conv[0]["content"] == REFLECTION_SYSTEM:
                kinds.append("reflect")
                text = self.reflection
            elif EXPERIENCE_HEADER in conv[-1]["content"] and not self.fail_when_experienced:
                kinds.append("act+e")
                experience = conv[-1]["content"].split(EXPERIENCE_HEADER + ": ", 1)[1]
                thought = self.thought.format(experience=experience)
                text = f"Thought: {thought}\nAction: {solve(grid_of(conv[-1]['content'].split(EXPERIENCE_HEADER)[0]))[0]}"
            else:
                kinds.append("act")
                text = "Thought: I wait.\nAction: wait"  # invalid: the room never changes
            out.append(Completion(text=text, num_tokens=4, truncated=False))
        self.batches.append(kinds)
        return out
