"""The `leafe` Hydra app: one entry point for every method, environment and model.

    leafe                                         # method=base, env=sokoban, model=tiny
    leafe method=leafe experiment=smoke           # the whole LEAFE pipeline at laptop scale
    leafe model=Qwen/Qwen2.5-1.5B-Instruct n_samples=16
    leafe -m method=base,leafe model=tiny         # a sweep (leafe-report <sweep folder> turns it into tables)
    leafe -m experiment=smoke_sweep               # every method on the tiny model
    leafe-splits experiment=micro_sokoban         # the held-out audit of a config, nothing run

The app resolves once what every method needs (leafe_recipe/context.py: the starting model
and the prompt protocol, the tasks, keys, policy, evaluation and SFT launch), audits the
splits by content before any compute is spent (leafe_recipe/splits.py: it stops when the
evaluated tasks overlap what is learned from, unless allow_overlap=true), then calls the
method named by `method.entry_point` ("module:function", taking the context) and writes and
prints what it returns. Every artefact is under Hydra's run folder; results.json holds the
method's results (Pass@k per evaluated model under "runs", its ledger), the prompt protocol
and where it came from, the splits audit and the resolved config. Rerunning with
`hydra.run.dir=<that folder>` resumes (see leafe_recipe/records.py). A cell that cannot run
on this machine (`Unavailable`) writes results.json with `not_run` and the reason; in a
sweep, one that fails writes `failed`, the reason and the traceback; either way the sweep goes
on (a single run exits with status 1).
"""

from __future__ import annotations

import importlib
import sys
import traceback
from pathlib import Path
from typing import Any, Callable

import hydra
from hydra.core.hydra_config import HydraConfig
from hydra.types import RunMode
from omegaconf import DictConfig

from leafe_recipe import CONF_DIR, Unavailable, models, splits, tracking
from leafe_recipe.context import PROMPT_KEYS, RunContext, plain
from leafe_recipe.envs.base import get_family
from leafe_recipe.records import write_json
from leafe_recipe.report import ledger_table, markdown_table, paired_vs_base, search_table


class MethodError(ValueError):
    """method.entry_point does not name a function; the message says what it should be."""


def method_entry(cfg: DictConfig) -> Callable[[RunContext], dict[str, Any]]:
    spec = str(cfg.method.get("entry_point") or "")
    module, _, function = spec.partition(":")
    try:
        return getattr(importlib.import_module(module), function)
    except (ImportError, AttributeError, ValueError) as err:
        raise MethodError(f"method.entry_point={spec!r} of method {cfg.method.name}: not a 'module:function' that imports "
                          f"({err}); a method's YAML names its entry point, e.g. leafe_recipe.leafe:run") from None  # fmt: skip


def eval_cache_dir(cfg: DictConfig, run_dir: Path) -> Path:
    if cfg.eval_cache_dir:
        return Path(cfg.eval_cache_dir)
    hc = HydraConfig.get()
    return Path(hc.sweep.dir) / "eval_cache" if hc.mode == RunMode.MULTIRUN else run_dir / "eval"


def given_prompt_keys() -> set[str]:
    """The prompt keys given on the command line (env.history_window=..., env.max_new_tokens=...)."""
    overrides = [o.lstrip("+~") for o in HydraConfig.get().overrides.task]
    return {k for k in PROMPT_KEYS if any(o.startswith(f"env.{k}=") for o in overrides)}


def context(cfg: DictConfig, run_dir: Path) -> RunContext:
    return RunContext.create(cfg, get_family(cfg.env.name), run_dir, eval_cache_dir(cfg, run_dir), given_prompt_keys())


def heldout_audit(ctx: RunContext) -> dict[str, Any]:
    """The splits audit of the run: its environment's splits, its eval_also environments' test
    tasks and the starting model's manifest."""
    from leafe_recipe.lm_eval_plugin import task_spec

    also = {}
    for env, override in plain(ctx.cfg.get("eval_also") or {}).items():
        spec = task_spec({"env": env}, {env: override or {}})
        family = get_family(env)
        also[env] = (family, family.tasks("test", spec["n_test"], **spec["tasks"]))
    return splits.audit({s: ctx.tasks(s) for s in ctx.family.splits}, ctx.family, models.manifest_of(ctx.start), ctx.start, also)


def _record_failure(err: Exception, cell: dict[str, Any], cfg: DictConfig, run_dir: Path, sweep: bool) -> None:
    """Not on this machine (Unavailable), or failed: a sweep records the cell and goes on to the
    next; a single run stops. The project's own errors say what to change, so they print
    without a traceback."""
    tracking.finish()
    ours = type(err).__module__.startswith(("leafe_recipe", "baselines"))
    if isinstance(err, Unavailable):
        write_json(run_dir / "results.json", {**cell, "not_run": str(err), "config": plain(cfg)})
        print(f"leafe: not run here: {err}", file=sys.stderr)
    elif sweep:
        reason = str(err) if ours else f"{type(err).__name__}: {err}"
        write_json(run_dir / "results.json", {**cell, "failed": reason, "traceback": traceback.format_exc(), "config": plain(cfg)})
        print(f"leafe: error: {reason} (recorded in {run_dir / 'results.json'}; the sweep goes on)", file=sys.stderr)
    elif ours:
        print(f"leafe: error: {err}", file=sys.stderr)
    else:
        raise err
    if not sweep:
        sys.exit(1)


@hydra.main(version_base=None, config_path=str(CONF_DIR), config_name="config")
def main(cfg: DictConfig) -> None:
    run_dir = Path(HydraConfig.get().runtime.output_dir)
    cell = {"method": cfg.method.name, "env": cfg.env.name, "model": cfg.model, "seed": cfg.seed}
    sweep = HydraConfig.get().mode == RunMode.MULTIRUN
    group = Path(HydraConfig.get().sweep.dir).name if sweep else run_dir.name
    try:
        if cfg.shard is not None and cfg.method.name != "leafe":
            raise MethodError(f"shard={cfg.shard} shards LEAFE's stage 1 (method=leafe), not method={cfg.method.name}; "
                              "evaluations shard through lm-eval: --metadata '{\"shard\": \"i/N\"}' (tasks/README.md)")  # fmt: skip
        entry = method_entry(cfg)
        tracking.start(plain(cfg.logger), run_dir, f"{cfg.method.name}_{cfg.env.name}_{cfg.seed}_{run_dir.name}", group, plain(cfg))
        ctx = context(cfg, run_dir)
        audit = heldout_audit(ctx)
        flagged = splits.check(audit, ctx.split, bool(cfg.allow_overlap))
        ctx.heldout = {**audit, "flagged": flagged}
        print(_heldout_line(ctx, flagged), flush=True)
        out = entry(ctx)
    except Exception as err:
        _record_failure(err, cell, cfg, run_dir, sweep)
        return
    prompt = {"history_window": ctx.prompt.history_window, "max_new_tokens": ctx.prompt.max_new_tokens, "source": ctx.prompt.source}
    write_json(run_dir / "results.json", {**cell, **out, "split": ctx.split, "prompt": prompt, "heldout": ctx.heldout, "config": plain(cfg)})
    tracking.log("ledger", out.get("ledger") or {})
    tracking.finish()
    _print_results(ctx, out)


def _heldout_line(ctx: RunContext, flagged: list[dict[str, Any]]) -> str:
    sizes = ", ".join(f"{name} {s['tasks']} ({s['distinct']} distinct)" for name, s in ctx.heldout["splits"].items())
    if flagged:
        return f"[splits] {sizes}; NOT held out, run with allow_overlap=true: " + "; ".join(
            f"{p['b']} vs {p['a']}: {p['exact']} exact, {p['near']} near" for p in flagged)  # fmt: skip
    known = "its manifest" if ctx.heldout["manifest"] is not None else "no manifest (what the model learned is unknown)"
    return f"[splits] {sizes}; the {ctx.split} tasks share no content with the train tasks or the model's ({known})"


def _print_results(ctx: RunContext, out: dict[str, Any]) -> None:
    cfg = ctx.cfg
    if out["runs"]:
        n = next(iter(out["runs"].values()))["n_tasks"]
        print(f"\n{cfg.env.name}: {n} {ctx.split} tasks x {cfg.n_samples} samples, model={cfg.model}, method={cfg.method.name}\n")
        print(markdown_table(out["runs"]))
        if paired := paired_vs_base(out["runs"]):
            print(f"\nPaired against the base model it started from:\n\n{paired}")
    if "exploration" in out:
        print("\nLEAFE stage 1 ledger (train tasks) and stage 2 data:\n")
        print(ledger_table(out["exploration"], out["distillation"]))
    if "search" in out:
        print(f"\nStage 1 as a search (train tasks, budget {out['search']['budget']} steps per task):\n")
        print(search_table(ctx.run_dir, out["search"]))
    print(f"\nartefacts: {ctx.run_dir}")


@hydra.main(version_base=None, config_path=str(CONF_DIR), config_name="config")
def audit_main(cfg: DictConfig) -> None:
    """`leafe-splits <overrides>`: the held-out audit of the run those overrides describe (per
    environment and split: tasks, distinct tasks, overlaps between splits and with the starting
    model's manifest), without running it or building a model; exit status 1 on any overlap."""
    try:
        ctx = context(cfg, Path(HydraConfig.get().runtime.output_dir))
        audit = heldout_audit(ctx)
    except Exception as err:
        if not type(err).__module__.startswith(("leafe_recipe", "baselines")):
            raise
        print(f"leafe-splits: error: {err}", file=sys.stderr)
        sys.exit(2)
    print(splits.table(audit))
    found = [p for p in audit["pairs"] if p["overlaps"]]
    print(f"\n{'overlaps found' if found else 'no overlap'}: {len(found)} of {len(audit['pairs'])} comparisons")
    sys.exit(1 if found else 0)


if __name__ == "__main__":
    main()
