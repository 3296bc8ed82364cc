"""Sokoban: procedurally generated, solver-verified rooms for a ReAct agent.

Rooms come from reverse play from the solved state (the gym-sokoban way) and are
checked by an optimal breadth-first solver, so every task is solvable and its
optimal plan length is known. `fatal_step` uses the same solver to find where a
trajectory became unwinnable, which grades a reflection's rollback step.

Grids are XSB rows: '#' wall, ' ' floor, '.' target, '$' box, '*' box on target,
'@' player, '+' player on target.
"""

from __future__ import annotations

import functools
import hashlib
import logging
import random
import re
from collections import deque
from dataclasses import dataclass, replace

from leafe_recipe.envs.base import EnvFamily, Step, Task, register

log = logging.getLogger(__name__)

ACTIONS = ("up", "down", "left", "right")
_OFFSETS = {"up": (-1, 0), "down": (1, 0), "left": (0, -1), "right": (0, 1)}

# Rendering swaps XSB's blank floor for a visible character so an LLM can count cells.
RENDER = {"#": "#", " ": "_", ".": "O", "$": "X", "*": "√", "@": "P", "+": "S"}
LEGEND = "Legend: # wall, _ floor, O target, X box, √ box on target, P player, S player on target"

SYSTEM_PROMPT = (
    "You are an agent playing Sokoban, a grid puzzle: push every box onto a target. "
    "Each turn you see the room; reply with a short Thought, then exactly one "
    "Action: up, down, left or right."
)

_INSTRUCTION = (
    "You are playing Sokoban. Goal: push every box onto a target. Each action moves you one "
    "cell: up (toward the top row), down, left or right. Walking into a box pushes it one cell "
    "if the cell behind it is free; you cannot pull boxes, push two boxes at once, or walk "
    "through walls. A box pushed into a corner can never be moved out, so plan ahead. You have "
    "{max_steps} actions. Answer with your reasoning, then your move, in this format:\n"
    "Thought: <your reasoning>\n"
    "Action: <up|down|left|right>"
)


# --- board -------------------------------------------------------------------------


@dataclass(frozen=True)
class _Board:
    """The static part of a room. Cells are numbered row-major on the grid padded by one
    non-floor cell on every side, so a move off the edge never wraps to another row."""

    height: int
    width: int
    floor: frozenset[int]  # every non-wall cell
    targets: frozenset[int]

    def cell(self, row: int, col: int) -> int:
        return (row + 1) * (self.width + 2) + col + 1

    def row_col(self, cell: int) -> tuple[int, int]:
        row, col = divmod(cell, self.width + 2)
        return row - 1, col - 1

    def offset(self, direction: str) -> int:
        drow, dcol = _OFFSETS[direction]
        return drow * (self.width + 2) + dcol


def _parse(grid: list[str]) -> tuple[_Board, int, frozenset[int]]:
    """Split an XSB grid into its board, player cell and box cells, rejecting malformed rooms."""
    if not grid or len({len(row) for row in grid}) != 1:
        raise ValueError(f"a Sokoban grid needs non-empty rows of equal length, got {grid!r}")
    board = _Board(len(grid), len(grid[0]), frozenset(), frozenset())
    floor, targets, boxes, players = set(), set(), set(), []
    for r, row in enumerate(grid):
        for c, ch in enumerate(row):
            if ch not in RENDER:
                raise ValueError(f"unknown Sokoban symbol {ch!r} at row {r}, column {c}")
            cell = board.cell(r, c)
            if ch != "#":
                floor.add(cell)
            if ch in ".*+":
                targets.add(cell)
            if ch in "$*":
                boxes.add(cell)
            if ch in "@+":
                players.append(cell)
    if len(players) != 1:
        raise ValueError(f"a Sokoban grid needs exactly one player, got {len(players)}")
    if len(boxes) != len(targets):
        raise ValueError(f"a Sokoban grid needs as many boxes as targets, got {len(boxes)} and {len(targets)}")
    return replace(board, floor=frozenset(floor), targets=frozenset(targets)), players[0], frozenset(boxes)


def _to_grid(board: _Board, player: int, boxes: frozenset[int]) -> list[str]:
    rows = []
    for r in range(board.height):
        row = []
        for c in range(board.width):
            cell = board.cell(r, c)
            target = cell in board.targets
            if cell not in board.floor:
                row.append("#")
            elif cell == player:
                row.append("+" if target else "@")
            elif cell in boxes:
                row.append("*" if target else "$")
            else:
                row.append("." if target else " ")
        rows.append("".join(row))
    return rows


def _move(board: _Board, player: int, boxes: frozenset[int], direction: str) -> tuple[int, frozenset[int], str]:
    """Apply one move; the outcome is 'move', 'push', 'wall' or 'blocked' (box cannot be pushed)."""
    step = board.offset(direction)
    nxt = player + step
    if nxt not in board.floor:
        return player, boxes, "wall"
    if nxt not in boxes:
        return nxt, boxes, "move"
    behind = nxt + step
    if behind not in board.floor or behind in boxes:
        return player, boxes, "blocked"
    return nxt, (boxes - {nxt}) | {behind}, "push"


def _solved(board: _Board, boxes: frozenset[int]) -> bool:
    return boxes <= board.targets


# --- solver ------------------------------------------------------------------------


def solve(grid: list[str], max_states: int = 200_000) -> list[str] | None:
    """Fewest-moves plan (BFS over player and box positions): [] if solved, None if unsolvable.

    Raises RuntimeError past `max_states` visited states rather than guessing "unsolvable".
    """
    board, player, boxes = _parse(grid)
    return _solve(board, player, boxes, max_states)


def _solve(board: _Board, player: int, boxes: frozenset[int], max_states: int) -> list[str] | None:
    if _solved(board, boxes):
        return []
    live = _live_cells(board)
    if not boxes <= live:
        return None
    offsets = [(name, board.offset(name)) for name in ACTIONS]
    start = (player, boxes)
    parent: dict[tuple[int, frozenset[int]], tuple[tuple[int, frozenset[int]], str] | None] = {start: None}
    queue = deque([start])
    while queue:
        state = queue.popleft()
        pos, bxs = state
        for name, step in offsets:
            nxt = pos + step
            if nxt not in board.floor:
                continue
            if nxt in bxs:
                behind = nxt + step
                # Pushing onto a dead cell (not in `live`) can never lead to a solution.
                if behind not in live or behind in bxs:
                    continue
                new_boxes = (bxs - {nxt}) | {behind}
            else:
                new_boxes = bxs
            new_state = (nxt, new_boxes)
            if new_state in parent:
                continue
            parent[new_state] = (state, name)
            if new_boxes is not bxs and _solved(board, new_boxes):
                return _plan(parent, new_state)
            if len(parent) > max_states:
                raise RuntimeError(
                    f"Sokoban solver exceeded max_states={max_states} without an answer; "
                    "raise max_states or use a smaller room"
                )
            queue.append(new_state)
    return None


def _live_cells(board: _Board) -> frozenset[int]:
    """Cells from which a lone box can still be pushed onto some target.

    A box anywhere else (a corner, or against a wall with no target along it) is dead
    whatever the other boxes do, so the solver never pushes one there.
    """
    live = set(board.targets)
    queue = deque(board.targets)
    while queue:
        cell = queue.popleft()
        for name in ACTIONS:
            step = board.offset(name)
            # A box at `prev` is pushed onto `cell` by a player standing at `prev - step`.
            prev = cell - step
            if prev not in live and prev in board.floor and prev - step in board.floor:
                live.add(prev)
                queue.append(prev)
    return frozenset(live)


def _plan(parent: dict, state: tuple[int, frozenset[int]]) -> list[str]:
    moves = []
    while parent[state] is not None:
        state, name = parent[state]
        moves.append(name)
    return moves[::-1]


# --- generation --------------------------------------------------------------------


def generate_room(
    seed: int,
    dim: tuple[int, int] = (6, 6),
    num_boxes: int = 1,
    wall_density: float = 0.15,
    min_solution_len: int = 4,
    max_tries: int = 200,
    max_solution_len: int | None = None,
) -> list[str]:
    """A solvable room (XSB rows) whose optimal plan has at least `min_solution_len` moves (and
    at most `max_solution_len`, when given).

    Deterministic in `seed`: rejected attempts draw from the same random stream.
    """
    return _generate(seed, tuple(dim), num_boxes, wall_density, min_solution_len, max_tries, max_solution_len)[0]


def _generate(
    seed: int,
    dim: tuple[int, int],
    num_boxes: int,
    wall_density: float,
    min_solution_len: int,
    max_tries: int,
    max_solution_len: int | None = None,
) -> tuple[list[str], list[str]]:
    """(room, optimal plan), so task building does not solve each room twice."""
    height, width = dim
    if height < 3 or width < 3 or num_boxes < 1:
        raise ValueError(f"Sokoban rooms need dim >= (3, 3) and num_boxes >= 1, got dim={dim}, num_boxes={num_boxes}")
    rng = random.Random(seed)
    rejected = {"too little floor": 0, "no box moved": 0, "unsolvable": 0, "too short": 0, "too long": 0, "too large to solve": 0}
    for _ in range(max_tries):
        board = _Board(height, width, frozenset(), frozenset())
        floor = _random_floor(rng, board, wall_density)
        if len(floor) < num_boxes + 2:
            rejected["too little floor"] += 1
            continue
        cells = sorted(floor)
        targets = rng.sample(cells, num_boxes)
        player = rng.choice([c for c in cells if c not in targets])
        board = replace(board, floor=frozenset(floor), targets=frozenset(targets))
        player, boxes = _reverse_play(rng, board, player, targets)
        if _solved(board, boxes):
            rejected["no box moved"] += 1
            continue
        try:
            plan = _solve(board, player, boxes, max_states=200_000)
        except RuntimeError:
            rejected["too large to solve"] += 1
            continue
        if plan is None:
            rejected["unsolvable"] += 1
        elif len(plan) < min_solution_len:
            rejected["too short"] += 1
        elif max_solution_len is not None and len(plan) > max_solution_len:
            rejected["too long"] += 1
        else:
            return _to_grid(board, player, boxes), plan
    reasons = ", ".join(f"{why}: {count}" for why, count in rejected.items() if count)
    raise ValueError(
        f"no Sokoban room for seed={seed}, dim={dim}, num_boxes={num_boxes}, wall_density={wall_density}, "
        f"min_solution_len={min_solution_len}, max_solution_len={max_solution_len} after {max_tries} tries ({reasons}); "
        "use a larger room, fewer boxes, fewer walls or a shorter min_solution_len"
    )


def _random_floor(rng: random.Random, board: _Board, wall_density: float) -> set[int]:
    """Interior cells that survive random walls, reduced to the largest connected region
    (ties go to the region found first in row-major order) so every floor cell is reachable."""
    open_cells = [
        board.cell(r, c)
        for r in range(1, board.height - 1)
        for c in range(1, board.width - 1)
        if rng.random() >= wall_density
    ]
    remaining = set(open_cells)
    best: set[int] = set()
    for start in open_cells:
        if start not in remaining:
            continue
        region = {start}
        queue = deque([start])
        while queue:
            cell = queue.popleft()
            for name in ACTIONS:
                nxt = cell + board.offset(name)
                if nxt in remaining and nxt not in region:
                    region.add(nxt)
                    queue.append(nxt)
        remaining -= region
        if len(region) > len(best):
            best = region
    return best


def _reverse_play(rng: random.Random, board: _Board, player: int, targets: list[int]) -> tuple[int, frozenset[int]]:
    """Random walk of reverse moves from the solved state; returns the visited state whose
    boxes ended farthest (Manhattan, summed) from their starting targets.

    The player steps to a free cell and, by a coin flip, pulls the box behind it along: the
    reverse of a push, so every visited state can be pushed back to the solved one.
    """
    boxes = list(targets)  # boxes[i] started on targets[i]
    best_score, best = 0, (player, frozenset(boxes))
    for _ in range(5 * board.height * board.width):
        step = board.offset(rng.choice(ACTIONS))
        nxt = player + step
        if nxt not in board.floor or nxt in boxes:
            continue
        behind = player - step
        if behind in boxes and rng.random() < 0.5:
            boxes[boxes.index(behind)] = player
        player = nxt
        score = sum(_distance(board, box, target) for box, target in zip(boxes, targets))
        if score > best_score:
            best_score, best = score, (player, frozenset(boxes))
    return best


def _distance(board: _Board, a: int, b: int) -> int:
    (ra, ca), (rb, cb) = board.row_col(a), board.row_col(b)
    return abs(ra - rb) + abs(ca - cb)


# --- grading -----------------------------------------------------------------------


def fatal_step(grid: list[str], actions: list[str]) -> int | None:
    """1-based index of the first action after which the room can no longer be solved, or None.

    Actions are raw model outputs, applied as SokobanEnv applies them (unparseable ones and
    bumps change nothing); replay stops once the room is solved.
    """
    board, player, boxes = _parse(grid)
    if _solve(board, player, boxes, max_states=200_000) is None:
        raise ValueError("fatal_step needs a solvable starting room")
    for i, text in enumerate(actions, start=1):
        direction = parse_action(text)
        if direction is None:
            continue
        player, boxes, outcome = _move(board, player, boxes, direction)
        # Walking without pushing stays in the same reachable region, so only a push
        # can change solvability.
        if outcome != "push":
            continue
        if _solved(board, boxes):
            return None
        if _solve(board, player, boxes, max_states=200_000) is None:
            return i
    return None


def grid_after(grid: list[str], actions: list[str]) -> list[str]:
    """The room after `actions` (raw answers, applied as SokobanEnv applies them)."""
    board, player, boxes = _parse(grid)
    for text in actions:
        direction = parse_action(text)
        if direction is not None:
            player, boxes, _ = _move(board, player, boxes, direction)
    return _to_grid(board, player, boxes)


def optimal_moves(grid: list[str]) -> set[str]:
    """The moves that start a fewest-moves plan from `grid` (empty when solved or unsolvable)."""
    plan = solve(grid)
    if not plan:
        return set()
    return {m for m in ACTIONS if (after := solve(grid_after(grid, [m]))) is not None and len(after) == len(plan) - 1}


def hint(step: int, move: str, instead: str | None) -> str:
    """The fix a Sokoban reflection names: the experience the oracle writes and the micro model
    learns to write and to follow."""
    return f"At step {step}, move {move} instead of {instead}." if instead and instead != move else f"At step {step}, move {move}."


def first_mistake(grid: list[str], actions: list[str]) -> tuple[int, str] | None:
    """(1-based step, the solver's move there) of the first action that leaves every shortest
    plan; None when every action was on one."""
    for i in range(len(actions)):
        state = grid_after(grid, actions[:i])
        best = optimal_moves(state)
        if not best:
            return None
        if parse_action(actions[i]) not in best:
            return i + 1, sorted(best)[0]
    return None


def oracle_reflection(task: Task, actions: list[str], finished: bool) -> str:
    """A reflection as the solver would write it (an ablation's upper bound on reflection):
    the fatal step, or for a failed episode with none the first mistake, or `none` for a live
    episode that can still be solved; the experience names the solver's move there."""
    grid = list(task.data["grid"])
    step = fatal_step(grid, actions)
    if step is None and finished:
        step = (first_mistake(grid, actions) or (None,))[0]
    if step is None:
        return "Rollback step: none\nExperience: The attempt is on track."
    best = sorted(optimal_moves(grid_after(grid, actions[: step - 1])))
    return f"Rollback step: {step}\nExperience: {hint(step, best[0] if best else 'up', parse_action(actions[step - 1]))}"


# --- text interface ----------------------------------------------------------------

_ACTION_TAG = re.compile(r"(?<![a-z])action\s*:", re.IGNORECASE)
_DIRECTION = re.compile(r"(?<![a-z])(up|down|left|right)(?![a-z])", re.IGNORECASE)


def parse_action(text: str) -> str | None:
    """The move in a ReAct reply: the first direction word after the last 'Action:' (or in
    the whole text when there is none); None when there is no direction word."""
    tags = list(_ACTION_TAG.finditer(text))
    if tags:
        text = text[tags[-1].end() :]
    match = _DIRECTION.search(text)
    return match.group(1).lower() if match else None


def render(grid: list[str]) -> str:
    """The room as the model sees it: visible symbols for every cell, then the legend."""
    rows = ["".join(RENDER[ch] for ch in row) for row in grid]
    return "\n".join(rows + [LEGEND])


class SokobanEnv:
    """One Sokoban episode at a time; the state is rebuilt from the task's grid on reset,
    so the same task and actions always give the same observations."""

    def __init__(self, max_steps: int) -> None:
        if max_steps < 1:
            raise ValueError(f"max_steps must be at least 1, got {max_steps}")
        self.max_steps = max_steps
        self._board: _Board | None = None
        self._player = 0
        self._boxes: frozenset[int] = frozenset()
        self._steps = 0
        self._done = False

    def reset(self, task: Task) -> str:
        self._board, self._player, self._boxes = _parse(list(task.data["grid"]))
        self._steps = 0
        self._done = False
        return _INSTRUCTION.format(max_steps=self.max_steps) + "\n\n" + self._view()

    def step(self, action: str) -> Step:
        if self._board is None:
            raise RuntimeError("SokobanEnv.step called before reset(task)")
        if self._done:
            raise RuntimeError("SokobanEnv.step called after the episode ended; call reset(task) first")
        self._steps += 1
        direction = parse_action(action)
        if direction is None:
            feedback = (
                "Invalid action: no move found. Valid actions are up, down, left, right; "
                "end your reply with 'Action: <up|down|left|right>'. Nothing changed."
            )
        else:
            self._player, self._boxes, outcome = _move(self._board, self._player, self._boxes, direction)
            feedback = _feedback(self._board, self._player, direction, outcome)
        success = _solved(self._board, self._boxes)
        if success:
            feedback += " All boxes are on targets: puzzle solved!"
        elif self._steps >= self.max_steps:
            feedback += " No steps left: the episode is over."
        self._done = success or self._steps >= self.max_steps
        return Step(
            observation=feedback + "\n" + self._view(),
            reward=1.0 if success else 0.0,
            done=self._done,
            success=success,
            info={"invalid": direction is None, "action": direction},
        )

    def close(self) -> None:
        """Nothing to release: the state is plain Python."""

    def _view(self) -> str:
        grid = _to_grid(self._board, self._player, self._boxes)
        return f"{render(grid)}\nSteps left: {self.max_steps - self._steps}"


def _feedback(board: _Board, player: int, direction: str, outcome: str) -> str:
    """One sentence on what the move did; `player` is the position after it."""
    if outcome == "move":
        return f"You moved {direction}."
    if outcome == "push":
        on_target = player + board.offset(direction) in board.targets
        return f"You moved {direction} and pushed a box" + (" onto a target." if on_target else ".")
    if outcome == "wall":
        return f"You cannot move {direction}: a wall is in the way. Nothing changed."
    return f"You cannot move {direction}: the box there is blocked by a wall or another box. Nothing changed."


# --- tasks -------------------------------------------------------------------------

# Each split walks its own seeds; seeds alone do not make splits disjoint (a small room space
# repeats itself: 5x5 rooms with one box are 8 rooms up to symmetry), so every room also belongs
# to exactly one split by its content: the hash of its fingerprint picks a share of the room
# space (sixteenths), and a split keeps only the rooms of its own share, each once. Disjointness
# thus holds by construction, whatever each split's size, and a model built on `build` rooms
# (the tiny and micro models) never saw a train, validation or test room.
SPLIT_SEEDS = {"train": 0, "test": 1_000_000, "validation": 2_000_000, "build": 3_000_000}
SHARES = {"test": range(0, 2), "validation": range(2, 3), "build": range(3, 5), "train": range(5, 16)}
_SIXTEENTHS = 16
SATURATED_AFTER = 1000  # seeds in a row that found no room not seen before: the room space is exhausted


def symmetries(grid: list[str]) -> list[list[str]]:
    """The room under the 8 symmetries of the square (rotations and reflections; a rotated
    rectangle is a rectangle the other way up): the same puzzle with its moves renamed."""
    out, g = [], [list(row) for row in grid]
    for _ in range(4):
        g = [list(row) for row in zip(*g[::-1])]  # a quarter turn clockwise
        out += ["".join(row) for row in g], ["".join(row[::-1]) for row in g]
    return out


def room_fingerprint(grid: list[str]) -> str:
    """What makes two rooms the same problem: walls, targets, boxes and player up to symmetry."""
    canonical = min("/".join(rows) for rows in symmetries(grid))
    return hashlib.sha256(canonical.encode()).hexdigest()[:16]


def share_of(fingerprint: str) -> str:
    """The split whose share of the room space holds this room."""
    bucket = int(fingerprint[:8], 16) % _SIXTEENTHS
    return next(split for split, buckets in SHARES.items() if bucket in buckets)


class RoomSpaceTooSmall(ValueError):
    """The room settings have fewer distinct rooms in a split's share than it asks for."""


@functools.lru_cache(maxsize=64)
def _split_rooms(split: str, n: int, dim: tuple[int, int], num_boxes: int, wall_density: float, min_solution_len: int,
                 max_solution_len: int | None) -> tuple[Task, ...]:  # fmt: skip
    start = SPLIT_SEEDS[split]
    tasks: list[Task] = []
    mine: set[str] = set()
    seen: set[str] = set()  # every distinct room met, whatever its share: how large the space is
    other = repeats = stale = 0
    seed = start
    while len(tasks) < n:
        if stale >= SATURATED_AFTER or seed - start >= 50 * n + 20 * SATURATED_AFTER:
            h, w = dim
            share = len(SHARES[split])
            raise RoomSpaceTooSmall(
                f"Sokoban {h}x{w}, {num_boxes} box{'es' if num_boxes > 1 else ''}, min_solution_len {min_solution_len}, "
                + (f"max_solution_len {max_solution_len}, " if max_solution_len is not None else "")
                + f"wall_density {wall_density}: {len(seen)} distinct rooms up to symmetry in {seed - start} seeds"
                + (f" (none new in the last {stale})" if stale >= SATURATED_AFTER else "")
                + f", {len(mine)} of them in the {split} split's share ({share}/{_SIXTEENTHS} of the room space); {n} requested. "
                "Use larger rooms (env.tasks.dim), more boxes (env.tasks.num_boxes), longer solutions or fewer tasks"
            )
        try:
            grid, plan = _generate(seed, dim, num_boxes, wall_density, min_solution_len, 200, max_solution_len)
        except ValueError:  # this seed made no room within its tries: the next one may
            seed, stale = seed + 1, stale + 1
            continue
        fingerprint = room_fingerprint(grid)
        stale = 0 if fingerprint not in seen else stale + 1
        seen.add(fingerprint)
        if share_of(fingerprint) != split:
            other += 1
        elif fingerprint in mine:
            repeats += 1
        else:
            mine.add(fingerprint)
            tasks.append(Task(env="sokoban", id=f"{split}-{seed}", data={"seed": seed, "grid": grid, "optimal_len": len(plan)}))
        seed += 1
    if other or repeats:
        log.info("sokoban %s: %d rooms from seeds %d..%d; skipped %d of another split's share and %d repeats",
                 split, n, start, seed - 1, other, repeats)  # fmt: skip
    return tuple(tasks)


def sokoban_tasks(
    split: str, n: int, dim: tuple[int, int] | list[int], num_boxes: int, wall_density: float, min_solution_len: int,
    max_solution_len: int | None,
) -> list[Task]:
    """`n` distinct rooms of a split (train, validation, test, or build: the rooms this project's
    own models are built from), disjoint by content from every other split (see SHARES). Task
    ids are "<split>-<seed>"; a room space too small for `n` is a RoomSpaceTooSmall error that
    names the numbers."""
    if split not in SPLIT_SEEDS:
        raise ValueError(f"unknown Sokoban split {split!r}; valid splits: {', '.join(SPLIT_SEEDS)}")
    longest = None if max_solution_len is None else int(max_solution_len)
    return list(_split_rooms(split, int(n), tuple(dim), int(num_boxes), float(wall_density), int(min_solution_len), longest))


def sokoban_fingerprint(task: Task) -> dict[str, str]:
    return {"room": room_fingerprint(list(task.data["grid"]))}


def expert_answers(task: Task, answer: str) -> list[str] | None:
    """The solver's optimal plan, each move written as `answer` says ({move}: its direction),
    in the answer format of the model that learns from it (env.expert.answer)."""
    plan = solve(list(task.data["grid"]))
    if plan is None:
        return None
    return [answer.format(move=move) for move in plan]


register(
    "sokoban",
    EnvFamily(
        make=SokobanEnv,
        tasks=sokoban_tasks,
        system_prompt=SYSTEM_PROMPT,
        fatal_step=lambda task, actions: fatal_step(task.data["grid"], actions),
        expert=expert_answers,
        valid_actions=lambda env: [f"Action: {move}" for move in ACTIONS],
        action_key=parse_action,
        oracle_reflection=oracle_reflection,
        fingerprint=sokoban_fingerprint,
    ),
)
