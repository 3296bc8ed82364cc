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


def test_every_data_file_of_the_package_is_in_the_wheel():
    from fnmatch import fnmatch

    data = tomllib.loads((REPO / "pyproject.toml").read_text())["tool"]["setuptools"]["package-data"]
    def listed(parts: tuple[str, ...]) -> bool:  # by any enclosing package, as setuptools reads its patterns
        return any(
            fnmatch("/".join(parts[i:]), pattern)
            for i in range(len(parts) - 1, -1, -1)
            for pattern in data.get(".".join(("leafe_recipe", *parts[:i])), [])
        )

    for path in (REPO / "leafe_recipe").rglob("*"):
        if path.is_file() and path.suffix not in (".py", ".pyc") and "__pycache__" not in path.parts:
            assert listed(path.relative_to(REPO / "leafe_recipe").parts), path
