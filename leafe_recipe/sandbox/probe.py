"""What this machine permits: the strongest isolation that runs a real program, found once
per process by running a probe program through the sandbox and recording what it observed.

LEAFE_SANDBOX_DISABLE (comma-separated: uid, userns, net, mount, pid) leaves mechanisms out,
to test the fallbacks or to work around a problem. A root caller that cannot drop to a
dedicated uid gets a SandboxError unless LEAFE_SANDBOX_ALLOW_ROOT=1.
"""

from __future__ import annotations

import errno
import json
import logging
import os
import re
import threading
import warnings
from pathlib import Path

from . import runs
from .model import Isolation, Limits, SandboxError
from .server import Plan, Server, ServerGone, python_candidates

log = logging.getLogger(__name__)

_MECHANISMS = {"uid", "userns", "net", "mount", "pid"}
_PROBE_LIMITS = Limits(cpu_s=5, wall_s=20, memory_mb=512)
_PROBE_PROGRAM = r"""
import json, os, socket, sys
seen = {"uid": os.getuid(), "pid": os.getpid(), "cwd": os.getcwd()}
try:
    socket.create_connection(("127.0.0.1", 9), timeout=0.5).close()
    seen["net"] = "connected"
except OSError as e:
    seen["net"] = e.errno
seen["writable"] = []
for d in ("/tmp", "/usr", "/"):
    name = os.path.join(d, "leafe-sandbox-probe-%d" % os.getpid())
    try:
        open(name, "w").close()
    except OSError:
        continue
    os.unlink(name)
    seen["writable"].append(d)
open("cwd-ok", "w").close()
seen["pids"] = len([p for p in os.listdir("/proc") if p.isdigit()])
seen["visible"] = [p for p in json.loads(sys.stdin.read()) if os.path.exists(p)]
print(json.dumps(seen))
"""

_lock = threading.Lock()
_state: tuple[Server, Plan, Isolation, int] | None = None  # ..., the pid that started the server


def current() -> tuple[Server, Plan, Isolation]:
    """The fork server, the plan and the isolation in force (probed once; a server that
    died is restarted, and a forked process starts its own)."""
    global _state
    with _lock:
        if _state is None:
            server, plan, iso = _probe()
            _warn_if_incomplete(iso)
            _state = server, plan, iso, os.getpid()
        elif _state[3] != os.getpid() or not _state[0].alive():
            server, plan, iso, owner = _state
            if owner == os.getpid():  # (a forked process leaves its parent's server alone)
                log.warning("the sandbox's fork server exited; restarting it")
                server.close()
            _state = Server(server.python, plan.view, plan.identity == "userns"), plan, iso, os.getpid()
        return _state[:3]


def run(spec: runs.Spec, limits: Limits) -> tuple[runs.Outcome, Isolation]:
    """Run `spec` on this process's fork server (started again, once, if it is gone)."""
    server, plan, iso = current()
    try:
        return runs.run(server, plan, spec, limits), iso
    except ServerGone:
        log.warning("the sandbox's fork server was gone when a run was sent; restarting it")
        server, plan, iso = current()
        return runs.run(server, plan, spec, limits), iso


def isolation() -> Isolation:
    """The isolation in force in this process (probed once, then cached)."""
    return current()[2]


def _disabled() -> set[str]:
    disabled = {w.strip() for w in os.environ.get("LEAFE_SANDBOX_DISABLE", "").split(",") if w.strip()}
    unknown = disabled - _MECHANISMS
    if unknown:
        raise SandboxError(f"LEAFE_SANDBOX_DISABLE: unknown mechanisms {sorted(unknown)}; known: {sorted(_MECHANISMS)}")
    return disabled


def _identities(disabled: set[str]) -> list[str]:
    """Strongest first. As root, without a dedicated uid the program would run as root (a
    user namespace does not change that on the host): only on explicit request."""
    root = os.geteuid() == 0
    found = ["uid"] if root and "uid" not in disabled else []
    if not root or os.environ.get("LEAFE_SANDBOX_ALLOW_ROOT") == "1":
        found += ([] if "userns" in disabled else ["userns"]) + ["caller"]
    if not found:
        raise SandboxError(
            "running as root but the dedicated uids are disabled (LEAFE_SANDBOX_DISABLE=uid); refusing to run "
            "programs as root (set LEAFE_SANDBOX_ALLOW_ROOT=1 to do it anyway)"
        )
    return found


def _probe() -> tuple[Server, Plan, Isolation]:
    """Try interpreters, identities, the private view and the per-run namespaces, strongest
    first; the first combination under which the probe program runs wins."""
    disabled = _disabled()
    combos = [(n, p) for n in (True, False) for p in (True, False) if not (n and "net" in disabled or p and "pid" in disabled)]
    combos.sort(key=lambda c: -sum(c))
    notes: list[str] = []
    last_error: BaseException | None = None
    for python in python_candidates():
        for identity in _identities(disabled):
            for view in (True, False) if "mount" not in disabled else (False,):
                try:
                    server = Server(python, view, identity == "userns")
                except SandboxError as exc:
                    last_error = exc
                    continue
                notes += [n for n in server.hello["notes"] if n not in notes]
                found = _first_working(server, identity, combos, notes)
                if found is not None:
                    return server, found[0], found[1]
                server.close()
                last_error = SandboxError(notes[-1] if notes else "the probe program failed")
                if view and not server.hello["view"]:
                    break  # the server already fell back to no view
    if os.geteuid() == 0 and os.environ.get("LEAFE_SANDBOX_ALLOW_ROOT") != "1":
        raise SandboxError(
            f"running as root but cannot run programs under a dedicated uid ({last_error}); refusing to run them "
            "as root (set LEAFE_SANDBOX_ALLOW_ROOT=1 to do it anyway)"
        )
    raise SandboxError(f"cannot launch a sandboxed program: {last_error}; {notes}")


def _first_working(server: Server, identity: str, combos: list[tuple[bool, bool]], notes: list[str]) -> tuple[Plan, Isolation] | None:
    userns = identity == "userns"
    for net, pid in combos:
        plan = Plan(identity, server.hello["view"], net, pid, nproc=identity == "uid" or (userns and _kernel_at_least(5, 14)))
        paths = [str(Path(__file__).resolve()), "/etc/passwd"]  # this checkout, the machine's files
        paths += [p for p in (os.path.expanduser("~"), os.getcwd()) if p != "/"]  # home, where the caller works
        spec = runs.Spec("program", {"payload": _PROBE_PROGRAM.encode(), "stdin": json.dumps(paths).encode()})
        try:
            outcome = runs.run(server, plan, spec, _PROBE_LIMITS)
        except SandboxError as exc:
            notes.append(str(exc))
            continue
        if outcome.returncode != 0:
            notes.append(f"probe program failed under {plan}: {outcome.outputs['stderr'].decode(errors='replace')[-500:]}")
            continue
        return plan, _isolation(server, plan, json.loads(outcome.outputs["stdout"]), notes)
    return None


def _isolation(server: Server, plan: Plan, seen: dict, notes: list[str]) -> Isolation:
    network = plan.net and seen["net"] in (errno.ENETUNREACH, errno.EADDRNOTAVAIL)
    if plan.net and not network:
        notes.append(f"network namespace did not isolate (connect: {seen['net']})")
    if os.geteuid() == 0 and plan.identity != "uid":
        notes.append("could not drop to a dedicated uid: programs run as root")
    return Isolation(
        uid=seen["uid"] if plan.identity == "uid" else None,
        user_namespace=plan.identity == "userns",
        network=network,
        readonly_fs=not seen["writable"],
        pid_namespace=plan.pid,
        private_proc=plan.pid and plan.view and seen["pid"] == 1 and seen["pids"] == 1,
        python=server.python,
        python_version=server.hello["python_version"],
        notes=tuple(notes),
        private_root=plan.view and not seen["visible"],
    )


def _kernel_at_least(major: int, minor: int) -> bool:
    m = re.match(r"(\d+)\.(\d+)", os.uname().release)
    return bool(m) and (int(m.group(1)), int(m.group(2))) >= (major, minor)


def _warn_if_incomplete(iso: Isolation) -> None:
    if not iso.complete:
        missing = [
            name
            for name, ok in (
                ("dedicated uid", iso.uid is not None),
                ("network namespace", iso.network),
                ("read-only file system", iso.readonly_fs),
                ("pid namespace", iso.pid_namespace),
                ("private /proc", iso.private_proc),
                ("private file-system view", iso.private_root),
            )
            if not ok
        ]
        warnings.warn(
            "leafe_recipe.sandbox: running without " + ", ".join(missing)
            + " (not permitted here); see leafe_recipe.sandbox.Isolation for what that means",
            RuntimeWarning,
            stacklevel=4,
        )
    log.info("sandbox isolation: %s", iso)
