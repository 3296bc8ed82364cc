"""scripts/wheelhouse.py: what goes into a wheelhouse, and a build and an offline install of a small
project end to end (a local package index, no network). The real project's wheelhouse, built for
this Python and installed into a fresh environment, editable too, is `make wheelhouse-check` (minutes,
network): an editable install builds the project in isolation, with a build backend from the
wheelhouse, which an offline test cannot make (setuptools before 70.1 needs the `wheel` package)."""

import importlib.util
import json
import os
import re
import subprocess
import sys
import tarfile
import textwrap
import venv
from pathlib import Path

import ensurepip
import pytest

from conftest import REPO

spec = importlib.util.spec_from_file_location("wheelhouse", REPO / "scripts" / "wheelhouse.py")
wheelhouse = importlib.util.module_from_spec(spec)
sys.modules["wheelhouse"] = wheelhouse  # dataclasses look their module up there
spec.loader.exec_module(wheelhouse)


def item(name, version, requires=(), requested=False, extras=None, url=None):
    """One entry of pip's installation report."""
    entry = {
        "metadata": {"name": name, "version": version, "requires_dist": list(requires)},
        "download_info": {"url": url or f"https://files/{name}-{version}-py3-none-any.whl", "archive_info": {}},
        "requested": requested,
    }
    if extras:
        entry["requested_extras"] = extras
    return entry


REPORT = {
    "environment": {"python_version": "3.11", "python_full_version": "3.11.7", "sys_platform": "linux", "platform_machine": "x86_64",
                    "implementation_name": "cpython", "platform_system": "Linux", "os_name": "posix", "platform_python_implementation": "CPython"},
    "install": [
        item("proj", "0.1", ["torch==2.13.0", "datasets", "ray[default]==2.55", "tomli; python_version < '3.11'",
                             "backport; python_version < '3.12'", "pytest; extra == 'test'", "tablewriter"], requested=True),
        item("torch", "2.13.0", ["filelock", "nvidia-cublas; platform_system == 'Linux'", "triton"]),
        item("nvidia-cublas", "13.0"),
        item("triton", "3.6", ["filelock"]),
        item("filelock", "3.20"),
        item("datasets", "5.2", ["filelock", "pyarrow"]),
        item("pyarrow", "22.0"),
        item("ray", "2.55", ["msgpack", "aiohttp; extra == 'default'", "pandas; extra == 'data'"]),
        item("tablewriter", "1.2", ["typepy[datetime]>=1"]),  # an extra asked for deeper down (pytablewriter's)
        item("typepy", "1.3", ["mbstrdecoder", "pytz; extra == 'datetime'"]),
        item("mbstrdecoder", "1.1"),
        item("pytz", "2025.2"),
        item("msgpack", "1.1"),
        item("aiohttp", "3.13"),
        item("backport", "1.0"),
    ],
}  # fmt: skip


def test_the_walk_leaves_out_torch_and_what_only_torch_needs():
    selection = wheelhouse.select(REPORT, wheelhouse.Target("3.11"), {"torch"}, set(), set())
    assert selection.pins == {"proj": "0.1", "filelock": "3.20", "datasets": "5.2", "pyarrow": "22.0", "ray": "2.55",
                              "msgpack": "1.1", "aiohttp": "3.13", "backport": "1.0", "tablewriter": "1.2",
                              "typepy": "1.3", "mbstrdecoder": "1.1", "pytz": "2025.2"}  # fmt: skip
    assert selection.left_out == {"torch": "excluded (the cluster's own build)"}  # nvidia-cublas, triton: not reached
    assert selection.unresolved == []


def test_markers_are_those_of_the_target_python():
    on_312 = wheelhouse.select(REPORT, wheelhouse.Target("3.12"), {"torch"}, set(), set())
    assert "backport" not in on_312.pins  # python_version < '3.12'
    on_310 = wheelhouse.select(REPORT, wheelhouse.Target("3.10"), {"torch"}, set(), set())
    assert on_310.unresolved == ["tomli"]  # needed there, absent from a resolution made elsewhere: said, not dropped


def test_what_the_target_has_or_is_left_out_stops_the_walk():
    selection = wheelhouse.select(REPORT, wheelhouse.Target("3.11"), {"torch"}, {"datasets"}, {"ray"})
    assert set(selection.pins) == {"proj", "backport", "tablewriter", "typepy", "mbstrdecoder", "pytz"}
    assert selection.left_out == {"torch": "excluded (the cluster's own build)", "datasets": "present on the target",
                                  "ray": "left out (--leave-out)"}  # fmt: skip


def test_platform_tags_cover_every_glibc_up_to_the_target():
    args = wheelhouse.Target("3.12", glibc="2.28").pip_args()
    tags = [args[i + 1] for i, a in enumerate(args) if a == "--platform"]
    assert tags[0] == "manylinux_2_28_x86_64" and tags[23] == "manylinux_2_5_x86_64" and len(tags) == 27
    assert tags[24:] == ["manylinux2014_x86_64", "manylinux2010_x86_64", "manylinux1_x86_64"]
    assert args[:5] == ["--python-version", "3.12", "--implementation", "cp", "--only-binary=:all:"]
    assert "manylinux_2_31_x86_64" not in wheelhouse.Target("3.12", glibc="2.28").pip_args()


def test_present_lists_are_names_or_pip_freeze(tmp_path):
    listed = tmp_path / "present.txt"
    listed.write_text("# the image\nTorch==2.11.0+cu130\nhuggingface_hub\nray[default]>=2\n-e git+https://x#egg=y\n\n")
    assert wheelhouse.read_names(listed) == {"torch", "huggingface-hub", "ray"}
    assert {"torch", "transformers", "pyarrow"} <= wheelhouse.read_names(REPO / "benchmarks" / "h200_image_packages.txt")


def test_the_packages_installed_without_dependencies_are_the_makefiles():
    makefile = (REPO / "Makefile").read_text()
    pinned = set(re.findall(r"--no-deps (\S+==\S+)", makefile))
    assert pinned == {pin for pins in wheelhouse.NO_DEPS.values() for pin in pins}


# --------------------------------------------------------------------------- #
# End to end, offline: a local index of small packages
# --------------------------------------------------------------------------- #


def package(folder: Path, name: str, version: str, requires: list[str]) -> Path:
    """A setuptools project `name` with one module of the same name."""
    folder.mkdir(parents=True)
    (folder / f"{name}.py").write_text(f"VERSION = {version!r}\n")
    deps = ", ".join(json.dumps(r) for r in requires)
    (folder / "pyproject.toml").write_text(textwrap.dedent(f"""\
        [build-system]
        requires = ["setuptools"]
        build-backend = "setuptools.build_meta"
        [project]
        name = "{name}"
        version = "{version}"
        dependencies = [{deps}]
        [tool.setuptools]
        py-modules = ["{name}"]
        """))
    return folder


def run(*cmd, env=None):
    proc = subprocess.run([str(c) for c in cmd], capture_output=True, text=True, env=env)
    assert proc.returncode == 0, f"{cmd}\n{proc.stdout}\n{proc.stderr}"
    return proc.stdout


@pytest.mark.slow
def test_a_wheelhouse_built_from_a_local_index_installs_with_no_index(tmp_path):
    bundled = Path(ensurepip.__file__).parent / "_bundled"
    if not list(bundled.glob("setuptools-*.whl")):
        pytest.skip("this Python's ensurepip bundles no setuptools wheel (the offline build backend)")
    index = tmp_path / "index"
    src = tmp_path / "src"
    for name, version, requires in [("torch", "2.13.0", ["nvidiafake"]), ("nvidiafake", "1.0", []),
                                    ("fakea", "1.0", ["torch", "fakeb>=1", "fakec; python_version < '3'"]),
                                    ("nodepsfake", "1.0", ["unobtainable"])]:  # fmt: skip
        run(sys.executable, "-m", "pip", "wheel", "--no-deps", "--no-build-isolation", "-q", "-w", index,
            package(src / name, name, version, requires))  # fmt: skip
    sdist = package(src / "fakeb-1.0", "fakeb", "1.0", [])  # only a source distribution on the index
    with tarfile.open(index / "fakeb-1.0.tar.gz", "w:gz") as tar:
        tar.add(sdist, arcname="fakeb-1.0")
    project = package(tmp_path / "proj", "proj", "0.1", ["fakea", "torch==2.13.0"])
    env = {**os.environ, "PIP_CONFIG_FILE": os.devnull, "PIP_NO_INDEX": "1", "PIP_FIND_LINKS": f"{index} {bundled}"}
    out = tmp_path / "wheelhouse"
    script = REPO / "scripts" / "wheelhouse.py"
    run(sys.executable, script, "build", out, "--project", project, "--without-deps", "nodepsfake==1.0", env=env)

    manifest = json.loads((out / "wheelhouse.json").read_text())
    names = {wheelhouse.wheel_name(w) for w in manifest["wheels"]}
    assert names == {"proj", "fakea", "fakeb", "nodepsfake", "setuptools"}  # not torch nor what only torch needs
    assert manifest["built_from_source"] == ["fakeb"] and manifest["build_only"] == ["setuptools"]
    assert manifest["left_out"] == {"torch": "excluded (the cluster's own build)"}

    # The cluster: a fresh environment with its own torch and nothing else, no index at all.
    offline = {**os.environ, "PIP_CONFIG_FILE": os.devnull, "PIP_NO_INDEX": "1"}
    offline.pop("PIP_FIND_LINKS", None)
    env_dir = tmp_path / "cluster"
    venv.create(env_dir, with_pip=True)
    python = env_dir / "bin" / "python"
    run(python, "-m", "pip", "install", "-q", "--no-deps", index / "torch-2.13.0-py3-none-any.whl", env=offline)
    said = run(sys.executable, script, "install", out, "--python", python, "--check", "import proj, fakea, fakeb, nodepsfake, torch", env=offline)
    assert "installing 4 of 5 wheels" in said and "[wheelhouse] ok" in said  # the build backend is not installed
    installed = run(python, "-m", "pip", "list", "--format=freeze", env=offline)
    assert "torch==2.13.0" in installed and "proj==0.1" in installed  # the cluster's torch, untouched
    said = run(sys.executable, script, "install", out, "--python", python, "--keep-installed", "--check", "import proj", env=offline)
    assert "installing 0 of 5 wheels" in said
