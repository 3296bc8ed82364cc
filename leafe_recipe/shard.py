"""Task shards across machines, and `leafe-merge`, which puts the shards' outputs back together.

A shard `i/N` is every N-th task from the i-th (tasks[i::N]) of the list the loader gives,
so N nodes split one task set with no coordination. Two stages take one:

- stage 1: `leafe method=leafe shard=i/N` grows the trees of its shard into its run folder
  and stops; `leafe-merge trees OUT SHARD_RUN...` writes OUT/trees.jsonl (and its key), after
  which `leafe method=leafe hydra.run.dir=OUT` (same settings) finds every tree done and goes
  on to distillation, training and evaluation.
- evaluation: the lm-eval tasks take `--metadata '{"shard": "i/N"}'`; `leafe-merge samples OUT
  LM_EVAL_OUTPUT...` writes one samples_<task>_<date>.jsonl per task, which `leafe-compare`
  and `leafe-report` read like an unsharded log.

Merging checks what it joins: stage-1 shards must carry the same key (the settings that
produced them) and no task twice; sample logs must not hold a problem twice.
"""

from __future__ import annotations

import argparse
import json
import re
import shutil
from pathlib import Path
from typing import TypeVar

from leafe_recipe.compare import sample_files
from leafe_recipe.records import key_file, read_jsonl, write_jsonl

T = TypeVar("T")


class ShardError(ValueError):
    """A shard or a merge is not as it should be; the message says what to change."""


def parse(shard: str | None) -> tuple[int, int] | None:
    """'i/N' -> (i, N); None stays None."""
    if shard is None:
        return None
    m = re.fullmatch(r"\s*(\d+)\s*/\s*(\d+)\s*", str(shard))
    if not m or int(m[2]) < 1 or int(m[1]) >= int(m[2]):
        raise ShardError(f"shard={shard!r}: write it as i/N with 0 <= i < N (shard=0/4 is the first of four)")
    return int(m[1]), int(m[2])


def take(items: list[T], shard: str | None) -> list[T]:
    """The shard's part of `items` (all of them without a shard)."""
    parsed = parse(shard)
    return items if parsed is None else items[parsed[0] :: parsed[1]]


def merge_trees(out: Path, shards: list[Path]) -> Path:
    """Shards' trees.jsonl -> out/trees.jsonl with the key they share."""
    files = [Path(s) / "trees.jsonl" for s in shards]
    missing = [str(f) for f in files if not f.exists()]
    if missing:
        raise ShardError(f"no trees in {', '.join(missing)}: give the run folders of `leafe method=leafe shard=i/N`")
    keys = {f: json.loads(key_file(f).read_text()) if key_file(f).exists() else None for f in files}
    first = keys[files[0]]
    differ = [str(f) for f, k in keys.items() if k != first]
    if differ:
        raise ShardError(f"{', '.join(differ)} were explored with other settings than {files[0]}: not shards of one run")
    seen: dict[str, Path] = {}
    records = []
    for f in files:
        for r in read_jsonl(f):
            task = f"{r['task']['env']}/{r['task']['id']}"
            if task in seen:
                raise ShardError(f"task {task} is in {seen[task]} and {f}: the shards overlap")
            seen[task] = f
            records.append(r)
    target = Path(out) / "trees.jsonl"
    if target.exists():
        raise ShardError(f"{target} exists: merge into a new folder")
    write_jsonl(target, records)
    if first is not None:
        shutil.copyfile(key_file(files[0]), key_file(target))
    return target


def merge_samples(out: Path, runs: list[Path]) -> list[Path]:
    """lm-eval output folders (one per shard) -> one samples_<task>_<date>.jsonl per task in out."""
    by_task: dict[str, list[Path]] = {}
    for run in runs:
        for task, paths in sample_files(run).items():
            by_task.setdefault(task, []).append(paths[-1])
    written = []
    for task, paths in sorted(by_task.items()):
        seen: dict[str, Path] = {}
        lines = []
        for path in paths:
            for r in read_jsonl(path):
                pid = str(r["doc"]["id"])
                if pid in seen:
                    raise ShardError(f"{task}: problem {pid} is in {seen[pid]} and {path}: the shards overlap")
                seen[pid] = path
                lines.append(r)
        date = max(re.search(r"_(\d{4}-\d{2}-\d{2}T[0-9.\-]+)\.jsonl$", p.name)[1] for p in paths)
        target = Path(out) / f"samples_{task}_{date}.jsonl"
        write_jsonl(target, lines)
        written.append(target)
    return written


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="leafe-merge", description="Merge the outputs of task shards (shard=i/N).")
    parser.add_argument("what", choices=["trees", "samples"], help="trees: stage-1 run folders; samples: lm-eval output folders")
    parser.add_argument("out", type=Path, help="the folder to write (a new run folder for trees)")
    parser.add_argument("shards", nargs="+", type=Path, help="the shards' folders")
    args = parser.parse_args(argv)
    args.out.mkdir(parents=True, exist_ok=True)
    try:
        if args.what == "trees":
            target = merge_trees(args.out, args.shards)
            n = sum(1 for _ in read_jsonl(target))
            print(f"leafe-merge: {n} trees from {len(args.shards)} shards -> {target}; go on with "
                  f"`leafe method=leafe hydra.run.dir={args.out}` and the shards' settings (no shard=)")  # fmt: skip
        else:
            for target in merge_samples(args.out, args.shards):
                print(f"leafe-merge: {sum(1 for _ in read_jsonl(target))} problems -> {target}")
    except (ShardError, ValueError, OSError) as err:
        raise SystemExit(f"leafe-merge: error: {err}") from None


if __name__ == "__main__":
    main()
