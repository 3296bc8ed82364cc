import tomllib

from conftest import REPO


def test_every_package_is_listed_for_the_wheel():
    listed = set(tomllib.loads((REPO / "pyproject.toml").read_text())["tool"]["setuptools"]["packages"])
    found = {
        ".".join(init.parent.relative_to(REPO).parts)
        for top in ("leafe_recipe", "baselines")
        for init in (REPO / top).rglob("__init__.py")
    }
    assert listed == found | {"leafe_recipe.hydra_conf", "leafe_recipe.tasks"}
