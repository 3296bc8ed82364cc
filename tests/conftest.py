import os
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
SHARED_DATA = Path(os.environ.get("LEAFE_SHARED_DATA", REPO.parent / "shared" / "data"))


def needs_shared(relpath: str) -> pytest.MarkDecorator:
    """Skip, saying why, where a public data set of ../shared/data is absent (a clone on its own)."""
    path = SHARED_DATA / relpath
    return pytest.mark.skipif(
        not path.exists(), reason=f"{path} not found: the shared public data sets (set LEAFE_SHARED_DATA to their folder)"
    )


NEEDS_MBPP = needs_shared("mbpp/mbpp.jsonl")

if (SHARED_DATA / "alfworld").exists():  # the shared ALFWorld games, where the tests expect ALFWorld's data
    os.environ.setdefault("ALFWORLD_DATA", str(SHARED_DATA / "alfworld"))
NEEDS_SANDBOXFUSION = needs_shared("code_contests/sandboxfusion_code_contests_sample20.jsonl")


@pytest.fixture(scope="session")
def tiny_model() -> str:
    """The offline tiny model directory (built once per cache, see leafe_recipe/tiny.py)."""
    from leafe_recipe import tiny

    return str(tiny.build())
