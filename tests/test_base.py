from dataclasses import dataclass

import pytest

from leafe_recipe.envs.base import ReplayDivergence, Step, Task, get_family, replay


@dataclass
class Counter:
    """A minimal env: the observation is the running sum; `drift` breaks determinism."""

    drift: int = 0
    total: int = 0

    def reset(self, task: Task) -> str:
        self.total = task.data["start"]
        return f"total={self.total}"

    def step(self, action: str) -> Step:
        if not action.isdigit():
            return Step(f"invalid action: {action!r} is not a number", 0.0, False, False, {"invalid": True})
        self.total += int(action) + self.drift
        self.drift *= 2
        return Step(f"total={self.total}", 0.0, self.total >= 10, self.total == 10, {"invalid": False})


TASK = Task(env="counter", id="t0", data={"start": 1})


def test_task_round_trips_through_json():
    assert Task.from_json(TASK.to_json()) == TASK


def test_replay_returns_the_last_observation():
    assert replay(Counter(), TASK, ["2", "x", "3"], ["total=1", "total=3", "invalid action: 'x' is not a number", "total=6"]) == "total=6"


def test_replay_names_the_step_where_observations_differ():
    env = Counter(drift=0)
    observations = ["total=1", "total=3", "total=6"]
    env.drift = 1  # the environment now adds 1 more than it did when the history was recorded
    with pytest.raises(ReplayDivergence, match="after step 1 differs"):
        replay(env, TASK, ["2", "3"], observations)


def test_replay_rejects_mismatched_lengths():
    with pytest.raises(ValueError, match="len\\(observations\\) == len\\(actions\\) \\+ 1"):
        replay(Counter(), TASK, ["2"], ["total=1"])


def test_replay_refuses_to_continue_past_the_end_of_an_episode():
    with pytest.raises(ReplayDivergence, match="ended at step 1"):
        replay(Counter(), TASK, ["9", "1"], ["total=1", "total=10", "total=11"])


def test_unknown_environment_lists_the_registered_ones():
    with pytest.raises(KeyError, match="unknown environment 'nope'; environments: .*scienceworld, sokoban, webshop"):
        get_family("nope")


def test_replay_compares_through_the_canonicaliser():
    listing = ["you see: b, a"]
    env = Counter()
    env.reset = lambda task: listing.pop(0)  # the same objects, listed in another order
    canonical = lambda obs: ", ".join(sorted(obs.removeprefix("you see: ").split(", ")))  # noqa: E731
    assert replay(env, TASK, [], ["you see: a, b"], canonical) == "you see: b, a"
    with pytest.raises(ReplayDivergence) as err:
        replay(Counter(drift=1), TASK, ["2"], ["total=1", "total=3"], canonical=str.strip)
    assert (err.value.step, err.value.expected, err.value.got) == (1, "total=3", "total=4")


def test_a_config_key_the_family_does_not_take_is_named_with_the_valid_ones():
    from leafe_recipe.envs.base import EnvConfigError, get_family

    family = get_family("sokoban")
    with pytest.raises(EnvConfigError, match=r"env.tasks of sokoban: got an unexpected keyword argument 'path'; valid keys: dim, "):
        family.tasks("train", 2, path="x")
    with pytest.raises(EnvConfigError, match=r"env.kwargs of sokoban: .* 'max_turns'; valid keys: max_steps"):
        family.make(max_turns=4)
