"""shard=i/N: N machines split stage 1 and evaluation; merged, the shards are the unsharded run."""

import subprocess
import sys
from pathlib import Path

import pytest
from leafe_recipe.envs.sokoban import solve
from leafe_recipe.leafe import grow_trees
from leafe_recipe.policy import Completion
from leafe_recipe.records import read_jsonl
from leafe_recipe.shard import ShardError, main, merge_samples, merge_trees, parse, take
from helpers import context
from scripted import Scripted, grid_of


def test_a_shard_is_every_nth_task_from_the_ith():
    items = list(range(10))
    assert take(items, "1/3") == [1, 4, 7] and take(items, None) == items
    assert sorted(x for i in range(3) for x in take(items, f"{i}/3")) == items
    assert parse(" 0 / 4 ") == (0, 4)
    for bad in ("4/4", "1", "-1/2", "0/0", "a/b"):
        with pytest.raises(ShardError, match="write it as i/N with 0 <= i < N"):
            parse(bad)


def ctx(folder: Path, *overrides: str):
    return context(folder, "method=leafe", "experiment=smoke", "env.n_train=5", *overrides)


def by_task(path: Path) -> dict[str, dict]:
    return {r["task"]["id"]: r for r in read_jsonl(path)}


def test_stage_1_shards_merge_into_the_unsharded_trees_record_for_record(tiny_model, tmp_path):
    whole = tmp_path / "whole" / "trees.jsonl"
    grow_trees(ctx(whole.parent), Scripted, whole)
    shards = []
    for i in range(3):
        shards.append(tmp_path / f"shard{i}")
        grow_trees(ctx(shards[-1], f"shard={i}/3"), Scripted, shards[-1] / "trees.jsonl")
    assert [len(by_task(s / "trees.jsonl")) for s in shards] == [2, 2, 1]
    merged = merge_trees(tmp_path / "merged", shards)
    assert by_task(merged) == by_task(whole) and len(by_task(whole)) == 5
    # the merged folder carries the shards' key: the unsharded run resumes from it, exploring nothing
    calls = []
    grow_trees(ctx(merged.parent), lambda: calls.append(1), merged)
    assert calls == []
    with pytest.raises(ShardError, match="the shards overlap"):
        merge_trees(tmp_path / "twice", [shards[0], shards[0]])
    grow_trees(ctx(tmp_path / "other", "budget=20", "shard=0/3"), Scripted, tmp_path / "other" / "trees.jsonl")
    with pytest.raises(ShardError, match="explored with other settings"):
        merge_trees(tmp_path / "mixed", [shards[0], tmp_path / "other"])


class HalfSolver:
    """Deterministic per prompt: solves a room when the character codes of its first room sum to an even number."""

    def generate(self, conversations, sampling):
        out = []
        for conv in conversations:
            move = solve(grid_of(conv[-1]["content"]))[0] if sum(map(ord, "".join(grid_of(conv[1]["content"])))) % 2 == 0 else "wait"
            out.append(Completion(text=f"Thought: go.\nAction: {move}", num_tokens=3, truncated=False))
        return out


def test_evaluation_shards_merge_into_the_unsharded_log(tmp_path):
    from leafe_recipe.lm_eval_plugin import evaluate_checkpoint

    def run(folder, shard=None):
        metadata = {"sokoban": {"n_test": 5}} | ({"shard": shard} if shard else {})
        evaluate_checkpoint("scripted", "leafe_sokoban", n_samples=2, output_path=folder, metadata=metadata, policy=HalfSolver())
        [log] = Path(folder).rglob("samples_*.jsonl")
        return log

    whole = {r["doc"]["id"]: r for r in read_jsonl(run(tmp_path / "whole"))}
    shards = [run(tmp_path / f"s{i}", f"{i}/2") for i in range(2)]
    [merged] = merge_samples(tmp_path / "merged", [tmp_path / "s0", tmp_path / "s1"])
    got = {r["doc"]["id"]: r for r in read_jsonl(merged)}
    assert sorted(got) == sorted(whole) and {len(list(read_jsonl(s))) for s in shards} == {2, 3}
    assert {k: (r["correct"], r["resps"]) for k, r in got.items()} == {k: (r["correct"], r["resps"]) for k, r in whole.items()}
    assert {0, 1} == {c for r in got.values() for c in r["correct"]}  # both outcomes occur


def test_leafe_merge_cli_says_what_is_wrong(tmp_path, capsys):
    with pytest.raises(SystemExit, match="leafe-merge: error: no trees in"):
        main(["trees", str(tmp_path / "out"), str(tmp_path / "nowhere")])


def test_the_app_shards_only_stage_1(tmp_path):
    leafe = str(Path(sys.executable).parent / "leafe")
    proc = subprocess.run([leafe, "method=base", "shard=0/2", f"hydra.run.dir={tmp_path}"], capture_output=True, text=True)
    assert proc.returncode == 1 and "shard=0/2 shards LEAFE's stage 1 (method=leafe), not method=base" in proc.stderr
