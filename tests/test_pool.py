"""Environments with a lifecycle: reused from a pool, capped, in worker processes that are
brought back when they die, closed at the end."""

import os
from dataclasses import replace

import pytest

from helpers import explore_config
from leafe_recipe.envs.base import get_family
from leafe_recipe.envs.pool import EnvCrashed, EnvPool, ProcessEnv
from leafe_recipe.explore import explore
from leafe_recipe.policy import Sampling
from leafe_recipe.records import read_jsonl
from leafe_recipe.rollout import run_episodes
from scripted import Scripted

SOKOBAN = get_family("sokoban")
TASKS = SOKOBAN.tasks("train", 4)


class Counted:
    """A Sokoban environment that counts how many exist, how many are alive, and closes."""

    made = alive = 0

    def __init__(self, **kwargs):
        self.env = SOKOBAN.make(**kwargs)
        Counted.made += 1
        Counted.alive += 1

    def reset(self, task):
        return self.env.reset(task)

    def step(self, action):
        return self.env.step(action)

    def close(self):
        Counted.alive -= 1


@pytest.fixture
def counted():
    Counted.made = Counted.alive = 0
    return replace(SOKOBAN, make=Counted)


def test_a_pool_reuses_its_environments_caps_them_and_closes_them(counted):
    with EnvPool(counted, {}, capacity=2) as pool:
        a, b = pool.acquire(), pool.acquire()
        assert pool.acquire() is None and pool.available == 0
        pool.release(a)
        assert pool.acquire() is a and Counted.made == 2
    assert Counted.alive == 0


def test_episodes_share_a_capped_pool_and_every_one_is_played(counted):
    policy = Scripted()
    starts = [(t, s) for t in TASKS for s in range(3)]
    family = replace(counted, max_live=2)
    episodes = list(run_episodes(starts, family, {"max_steps": 3}, policy, Sampling(), None, max_concurrent=256))
    assert len(episodes) == 12 and Counted.made == 2 and Counted.alive == 0
    assert max(len(b) for b in policy.batches) == 2  # never more live episodes than environments


def test_exploration_waits_for_environments_instead_of_dropping_branches(counted, tmp_path):
    config = explore_config(reflect_every=0, history_window=None)

    def trees(family, name):
        path = explore(TASKS, family, {"max_steps": 6}, Scripted(), Sampling(), Sampling(), config, tmp_path / name)
        return {t["task"]["id"]: t for t in read_jsonl(path)}

    capped = trees(replace(counted, max_live=2), "capped.jsonl")
    assert Counted.made == 2 and Counted.alive == 0
    assert capped == trees(SOKOBAN, "free.jsonl")  # the same trees: every branch waited for an environment


def test_an_environment_in_a_worker_process_plays_like_the_local_one():
    local, remote = SOKOBAN.make(max_steps=4), ProcessEnv("sokoban", {"max_steps": 4})
    try:
        assert remote.reset(TASKS[0]) == local.reset(TASKS[0])
        for action in ("Action: up", "Action: left", "bad"):
            assert remote.step(action) == local.step(action)
        assert remote._process.pid != os.getpid()
    finally:
        remote.close()
    assert remote._process.poll() is not None


def test_a_crashed_worker_is_restarted_and_the_episode_goes_on_from_where_it_was():
    local, remote = SOKOBAN.make(max_steps=6), ProcessEnv("sokoban", {"max_steps": 6})
    try:
        remote.reset(TASKS[1])
        local.reset(TASKS[1])
        for action in ("Action: up", "Action: right"):
            assert remote.step(action) == local.step(action)
        first = remote._process.pid
        remote._process.kill()  # the simulator crashes between two steps
        remote._process.wait()
        assert remote.step("Action: down") == local.step("Action: down")  # replayed to step 2, then stepped
        assert remote._process.pid != first and remote.actions == ["Action: up", "Action: right", "Action: down"]
    finally:
        remote.close()


def test_a_worker_that_keeps_dying_is_a_clear_error(monkeypatch):
    remote = ProcessEnv("sokoban", {})
    monkeypatch.setattr(ProcessEnv, "_start", lambda self: setattr(self, "_conn", _Dead()) or setattr(self, "_process", _Gone()))
    remote._conn, remote._process = _Dead(), _Gone()
    with pytest.raises(EnvCrashed, match="worker process died 3 times on reset"):
        remote.reset(TASKS[0])


class _Dead:
    def send(self, _):
        raise BrokenPipeError

    def close(self):
        pass


class _Gone:
    pid = -1

    def kill(self):
        pass

    def wait(self, timeout=None):
        return -9
