"""method=leafe_rl, the paper's "LEAFE + RL": GRPO on the train tasks (`method.grpo`, the
settings of method=grpo), then LEAFE (the settings of method=leafe) from the GRPO checkpoint,
with the run's one prompt protocol; reports the base model, GRPO and LEAFE + RL. The LEAFE
checkpoint's manifest inherits GRPO's, so both stages' train tasks are what it learned from."""

from __future__ import annotations

from typing import Any

from baselines.grpo import check_protocol, engine, train_grpo
from leafe_recipe import leafe
from leafe_recipe.context import RunContext
from leafe_recipe.evaluate import evaluate


def run(ctx: RunContext) -> dict[str, Any]:
    engine(ctx.cfg.method.grpo.engine, ctx.cfg.method.grpo.dry_run)  # it may not run here at all
    check_protocol(ctx)
    base = evaluate(ctx, ctx.init, "base")
    checkpoint, grpo = train_grpo(ctx, ctx.cfg.method.grpo, ctx.run_dir / "grpo")
    if checkpoint is None:  # a dry run of the GPU engine
        return {"runs": {"base": base}, "grpo": grpo}
    out = leafe.run(ctx.with_start(str(checkpoint)), label="grpo")
    runs = out.pop("runs")
    return {"runs": {"base": base, "grpo": runs["grpo"], "leafe_rl": runs["leafe"]}, "grpo": grpo, **out}
