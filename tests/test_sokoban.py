"""Sokoban environment: generation, optimal solver, text interface, determinism, fatal-step labels."""

import pytest

from leafe_recipe.envs.base import ReplayDivergence, Task, get_family, replay
from leafe_recipe.envs import sokoban as envs_sokoban
from leafe_recipe.envs.sokoban import (
    LEGEND,
    RoomSpaceTooSmall,
    fatal_step,
    generate_room,
    parse_action,
    render,
    room_fingerprint,
    share_of,
    solve,
    symmetries,
)

# The family as the app builds it: settings not given here are its env config's (hydra_conf/env/sokoban.yaml).
SokobanEnv, sokoban_tasks = get_family("sokoban").make, get_family("sokoban").tasks

# Hand-made rooms with their optimal plan lengths (None: unsolvable).
STRAIGHT = ["#######", "#@ $ .#", "#######"]  # walk once, push twice
AROUND = ["######", "#    #", "#.@$ #", "#    #", "######"]  # walk around the box (4), push left twice
ALONG_WALL = ["######", "# $ .#", "#   @#", "######"]  # a box against a wall is live when a target is on that wall
TWO_BOXES = ["#######", "#.$@$.#", "#######"]
SOLVED = ["####", "#@*#", "####"]
CORNERED = ["#####", "#$  #", "# @.#", "#####"]  # box in a corner
WALL_NO_TARGET = ["######", "#    #", "#$  .#", "#  @ #", "######"]  # box stuck on a wall with no target
ROOMS = [
    (STRAIGHT, 3),
    (AROUND, 6),
    (ALONG_WALL, 6),
    (TWO_BOXES, 3),
    (SOLVED, 0),
    (CORNERED, None),
    (WALL_NO_TARGET, None),
]

# Player bottom-left, box in the middle, target on the right: up, right, right wins;
# any push of the box up, down or left puts it on a wall with no target.
FATAL_ROOM = ["######", "#    #", "# $ .#", "#@   #", "######"]


def task_for(grid: list[str]) -> Task:
    return Task(env="sokoban", id="hand", data={"seed": -1, "grid": grid, "optimal_len": len(solve(grid) or [])})


def play(env, task: Task, actions: list[str]) -> list[str]:
    observations = [env.reset(task)]
    observations += [env.step(a).observation for a in actions]
    return observations


# --- generation ----------------------------------------------------------------------


@pytest.mark.parametrize("dim,num_boxes", [((6, 6), 1), ((7, 7), 2)])
def test_generated_rooms_are_solvable_with_the_recorded_optimal_length(dim, num_boxes):
    for task in sokoban_tasks("train", 100, dim=dim, num_boxes=num_boxes):
        grid = task.data["grid"]
        plan = solve(grid)
        assert plan is not None and len(plan) == task.data["optimal_len"] >= 4
        assert len(grid) == dim[0] and {len(row) for row in grid} == {dim[1]}
        assert grid[0] == grid[-1] == "#" * dim[1] and all(row[0] == row[-1] == "#" for row in grid)
        assert sum(row.count("$") + row.count("*") for row in grid) == num_boxes
        assert any("$" in row for row in grid), "a generated room is never already solved"


def test_same_seed_same_room_and_min_solution_len_is_honoured():
    assert generate_room(7) == generate_room(7)
    assert generate_room(7, dim=(8, 8), num_boxes=2) == generate_room(7, dim=(8, 8), num_boxes=2)
    assert len(solve(generate_room(3, dim=(7, 7), min_solution_len=8))) >= 8


def test_a_room_is_the_same_problem_under_the_squares_symmetries():
    room = generate_room(5)
    prints = {room_fingerprint(rows) for rows in symmetries(room)}
    assert len(symmetries(room)) == 8 and prints == {room_fingerprint(room)}


def test_splits_are_deterministic_distinct_and_disjoint_by_content_not_only_by_seed(caplog):
    splits = {s: sokoban_tasks(s, 30) for s in ("train", "validation", "test", "build")}
    assert splits["train"] == sokoban_tasks("train", 30) and sokoban_tasks("train", 2, dim=[6, 6]) == splits["train"][:2]
    prints = {s: [room_fingerprint(t.data["grid"]) for t in tasks] for s, tasks in splits.items()}
    assert all(len(set(p)) == 30 for p in prints.values())  # no room twice in a split, up to symmetry
    assert all(not set(prints[a]) & set(prints[b]) for a in prints for b in prints if a < b)
    assert [t.data["seed"] for t in splits["test"][:1]] >= [1_000_000] and splits["test"][0].id.startswith("test-")
    assert all(share_of(p) == s for s, ps in prints.items() for p in ps)


def test_a_room_space_too_small_for_the_request_is_refused_with_the_numbers():
    """5x5 rooms with one box (the old micro study's setting) are 8 rooms up to symmetry."""
    with pytest.raises(RoomSpaceTooSmall, match=r"5x5, 1 box, .*: 8 distinct rooms up to symmetry .*; 100 requested"):
        sokoban_tasks("test", 100, dim=[5, 5], min_solution_len=4)


def test_bad_split_and_impossible_parameters_raise_value_error():
    with pytest.raises(ValueError, match="train, test, validation, build"):
        sokoban_tasks("dev", 1)
    with pytest.raises(ValueError, match="after 20 tries"):
        generate_room(0, dim=(4, 4), num_boxes=4, max_tries=20)


def test_family_is_registered():
    family = get_family("sokoban")
    assert family.make.__wrapped__ is envs_sokoban.SokobanEnv and family.tasks.__wrapped__ is envs_sokoban.sokoban_tasks  # (keyword-checked)
    assert "Sokoban" in family.system_prompt


# --- solver --------------------------------------------------------------------------


@pytest.mark.parametrize("grid,optimal", ROOMS)
def test_solver_is_optimal_on_hand_made_rooms(grid, optimal):
    plan = solve(grid)
    assert (None if plan is None else len(plan)) == optimal


@pytest.mark.parametrize("grid", [g for g, optimal in ROOMS if optimal])
def test_executing_the_plan_solves_the_room(grid):
    env = SokobanEnv()
    env.reset(task_for(grid))
    steps = [env.step(f"Thought: follow the plan.\nAction: {move}") for move in solve(grid)]
    assert [s.reward for s in steps] == [0.0] * (len(steps) - 1) + [1.0]
    assert steps[-1].done and steps[-1].success and "solved" in steps[-1].observation


def test_solver_refuses_to_guess_past_max_states():
    with pytest.raises(RuntimeError, match="max_states"):
        solve(AROUND, max_states=5)


def test_malformed_grids_are_rejected():
    with pytest.raises(ValueError, match="one player"):
        solve(["#####", "#$ .#", "#####"])
    with pytest.raises(ValueError, match="as many boxes as targets"):
        solve(["#####", "#@$ #", "#####"])


# --- text interface ------------------------------------------------------------------


@pytest.mark.parametrize(
    "text,expected",
    [
        ("Action: up", "up"),
        ("Thought: the box is left of me.\nAction: Right", "right"),
        ("Thought: I could go left.\nAction: **DOWN**", "down"),
        ("Action: [left]", "left"),
        ('Action: "up".', "up"),
        ("Action: move_left", "left"),
        ("Action: push right", "right"),
        ("action: down then left", "down"),
        ("Action: up\nThought: no, wait.\nAction: left", "left"),
        ("right", "right"),
        ("I will push the box down", "down"),
        ("Action: upward", None),
        ("Thought: going left is bad.\nAction: wait", None),
        ("Reaction: up", "up"),  # 'Reaction:' is not an Action tag, so the whole text is searched
        ("", None),
    ],
)
def test_parse_action(text, expected):
    assert parse_action(text) == expected


def test_render_uses_visible_symbols_and_a_legend():
    assert render(["#####", "#@$.#", "#+* #", "#####"]) == "\n".join(
        ["#####", "#PXO#", "#S√_#", "#####", LEGEND]
    )


def test_reset_gives_instruction_and_room():
    obs = SokobanEnv(max_steps=7).reset(task_for(STRAIGHT))
    assert "Action: <up|down|left|right>" in obs
    assert obs.endswith("#######\n#P_X_O#\n#######\n" + LEGEND + "\nSteps left: 7")


def test_moves_pushes_and_blocked_moves():
    env = SokobanEnv()
    env.reset(task_for(["#######", "#.$$@ #", "#. ####", "#######"]))
    bump = env.step("Action: down")
    assert bump.observation.startswith("You cannot move down: a wall")
    blocked = env.step("Action: left")
    assert blocked.observation.startswith("You cannot move left: the box there is blocked")
    assert "#OXXP_#" in blocked.observation
    assert env.step("Action: right").observation.startswith("You moved right.")
    assert not bump.info["invalid"] and bump.reward == 0.0 and not bump.done

    env.reset(task_for(STRAIGHT))
    env.step("Action: right")
    pushed = env.step("Action: right")
    assert pushed.observation.startswith("You moved right and pushed a box.")
    assert "#__PXO#" in pushed.observation
    assert env.step("Action: right").observation.startswith("You moved right and pushed a box onto a target.")


def test_invalid_action_is_feedback_and_counts_as_a_step():
    env = SokobanEnv(max_steps=5)
    env.reset(task_for(STRAIGHT))
    step = env.step("I have no idea what to do")
    assert step.observation.startswith("Invalid action:") and "up, down, left, right" in step.observation
    assert step.info == {"invalid": True, "action": None}
    assert step.reward == 0.0 and not step.done
    assert step.observation.endswith("Steps left: 4")


def test_step_limit_ends_the_episode_and_step_after_done_raises():
    env = SokobanEnv(max_steps=2)
    env.reset(task_for(STRAIGHT))
    assert not env.step("Action: left").done
    last = env.step("garbage")
    assert last.done and not last.success and last.reward == 0.0
    assert last.observation.endswith("Steps left: 0")
    with pytest.raises(RuntimeError):
        env.step("Action: right")
    with pytest.raises(RuntimeError):
        SokobanEnv().step("Action: right")


def test_same_task_and_actions_give_the_same_observations_and_replay_checks_them():
    task = sokoban_tasks("train", 1)[0]
    actions = ["Action: up", "nonsense", "Action: left", "Action: down", "Action: right"]
    observations = play(SokobanEnv(), task, actions)
    assert play(SokobanEnv(), task, actions) == observations
    assert replay(SokobanEnv(), task, actions, observations) == observations[-1]

    tampered = observations[:2] + [observations[2] + " "] + observations[3:]
    with pytest.raises(ReplayDivergence, match="after step 2"):
        replay(SokobanEnv(), task, actions, tampered)


# --- fatal-step labels ---------------------------------------------------------------


@pytest.mark.parametrize(
    "actions,expected",
    [
        (["Action: up", "Action: right", "Action: right"], None),  # wins
        (["Action: up", "Action: right"], None),  # still winnable
        (["Action: right", "Action: right", "Action: up"], None),  # walks, never pushes
        (["Action: up", "Action: up", "Action: right", "Action: down"], 4),  # pushes the box down onto the bottom wall
        (["Action: left", "Action: right", "Action: up"], 3),  # harmless bump, then a fatal push up
        (["no idea", "Action: right", "Action: up", "Action: down"], 3),  # invalid text, then fatal push
        (["Action: up", "Action: right", "Action: right", "Action: left"], None),  # stops at the win
    ],
)
def test_fatal_step(actions, expected):
    assert fatal_step(FATAL_ROOM, actions) == expected


def test_fatal_step_on_an_unsolvable_room_is_an_error():
    with pytest.raises(ValueError, match="solvable"):
        fatal_step(CORNERED, ["Action: up"])


def test_the_oracle_names_the_fatal_push_and_the_solvers_move_there():
    from leafe_recipe.envs.base import Task
    from leafe_recipe.envs.sokoban import first_mistake, oracle_reflection

    grid = ["######", "#.   #", "# $  #", "# @  #", "######"]
    task = Task("sokoban", "t", {"grid": grid})
    assert solve(grid) == ["up", "right", "up", "left"]
    # the second push right puts the box against the right wall: fatal at step 4
    doomed = ["Action: left", "Action: up", "Action: right", "Action: right"]
    assert (fatal_step(grid, doomed), first_mistake(grid, doomed)) == (4, (1, "up"))
    assert oracle_reflection(task, doomed, finished=True) == "Rollback step: 4\nExperience: At step 4, move down instead of right."
    # a failure with no fatal push: the first mistake
    wasted = ["Action: right", "Action: up", "Action: left", "Action: left"]
    assert oracle_reflection(task, wasted, finished=True) == "Rollback step: 1\nExperience: At step 1, move up instead of right."
    # a live attempt that can still be solved is on track
    assert oracle_reflection(task, wasted[:2], finished=False).startswith("Rollback step: none")
