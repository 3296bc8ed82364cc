"""Environment families; importing this package registers every built-in family."""

from leafe_recipe.envs import sokoban  # noqa: F401  (registers the family)
from leafe_recipe.envs import code  # noqa: F401  (registers codecontests, mbpp, humaneval)
