"""A one-step choice environment for the learning tests of the training methods: a Sokoban room
(so the tiny model, taught on Sokoban prompts, answers with moves), where the first move
decides and only 'up' wins. The tiny model picks it less than half the time (44% for its build at 8c01263); the expert
always does."""
from leafe_recipe.envs.base import EnvFamily, Step, Task, get_family, register
from leafe_recipe.envs.sokoban import ACTIONS, parse_action

SOKOBAN = get_family("sokoban")

class ChoiceEnv:
    """A Sokoban room seen once: the first move decides, and only 'up' wins."""
    def __init__(self, **kwargs):
        self.env = SOKOBAN.make(max_steps=1)
    def reset(self, task):
        return self.env.reset(Task("sokoban", task.id, task.data))
    def step(self, action):
        move = parse_action(action)
        ok = move == "up"
        return Step("You win." if ok else "You lose.", float(ok), True, ok, {"invalid": move is None})

def tasks(split, n, **kw):
    return [Task("choice", t.id, t.data) for t in SOKOBAN.tasks(split, n)]

FAMILY = EnvFamily(ChoiceEnv, tasks, SOKOBAN.system_prompt, expert=lambda task: ["Action: up"],
                   valid_actions=lambda obs: [f"Action: {m}" for m in ACTIONS], action_key=parse_action,
                   fingerprint=SOKOBAN.fingerprint)
register("choice", FAMILY)
