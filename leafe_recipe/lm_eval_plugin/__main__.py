"""`python -m leafe_recipe.lm_eval_plugin`: `leafe-eval`; with `--tasks-dir`, the tasks folder lm-eval needs on its include path."""

import sys

from leafe_recipe import TASKS_DIR
from leafe_recipe.lm_eval_plugin.cli import cli

if sys.argv[1:] == ["--tasks-dir"]:
    print(TASKS_DIR)
else:
    cli()
