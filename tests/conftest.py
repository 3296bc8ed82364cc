import os
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
SHARED_DATA = Path(os.environ.get("LEAFE_SHARED_DATA", REPO.parent / "shared" / "data"))


@pytest.fixture(scope="session")
def tiny_model() -> str:
    """The offline tiny model directory (built once per cache, see leafe_recipe/tiny.py)."""
    from leafe_recipe.tiny import build_tiny_model

    return str(build_tiny_model())
