"""Running one sandboxed run through the fork server, from the judge's side: its
descriptors, the wall-clock deadline, the output caps, its exit status, and the cleanup that
leaves nothing running.

A run is a program, or an assert judgement's two processes (the tests' process, the run's
first, forks the submission's). It gets its program, input or tests on sealed memory files,
and writes on pipes that the judge reads, each capped; its supervisor reports the first
process's pid, then its wait status and CPU time, on a status pipe, and kills the run on a
byte on the control pipe (or when the judge dies).
"""

from __future__ import annotations

import dataclasses
import fcntl
import logging
import os
import selectors
import shutil
import tempfile
import time
from dataclasses import dataclass, field

from .model import Limits, SandboxError
from .server import Plan, Server, ServerGone, clean_env
from .uids import kill_session, kill_uid, live_pids, pool as uid_pool

log = logging.getLogger(__name__)

VIEW_WORKDIR = "/work"
REPORT_CAP = 1 << 20
_GRACE_S = 10.0  # how long a killed run's supervisor may take to report


@dataclass
class Spec:
    """A run: its role ("program" or "asserts"), its memory files by name (the stdin is
    one), the pipes the judge reads from it by name, and the largest message that may
    cross between its two processes."""

    role: str
    files: dict[str, bytes]
    streams: tuple[str, ...] = ("stdout", "stderr")
    max_message: int = 0


@dataclass
class Outcome:
    """What a run did: what it wrote on each stream, which streams went over their cap, the
    first process's exit status (None if unknown) and the run's CPU time."""

    outputs: dict[str, bytes]
    truncated: set[str]
    returncode: int | None
    cpu_s: float
    timed_out: bool
    wall_s: float
    workdir: str


@dataclass
class _Run:
    spec: Spec
    uids: dict[str, int | None]
    workdir: str
    streams: dict[int, str]  # read end -> stream name
    status: int
    control: int
    buffers: dict[str, bytearray] = field(default_factory=dict)
    truncated: set[str] = field(default_factory=set)
    status_text: bytes = b""
    done: bool = False  # the status pipe reached end of file: the supervisor is gone


def run(server: Server, plan: Plan, spec: Spec, limits: Limits) -> Outcome:
    """Run `spec` to its end, the deadline or an output cap; never leave it running."""
    start = time.monotonic()
    launched = _launch(server, plan, spec, limits)
    try:
        timed_out = _watch(launched, limits, start + limits.wall_s)
    finally:
        returncode, cpu = _finish(launched, plan)
    if launched.status_text.startswith(b"E "):
        raise SandboxError("a sandboxed run could not be set up: " + launched.status_text[2:].decode(errors="replace").strip())
    if not launched.status_text and not timed_out:  # the request was lost with the server
        server.mark_gone()
        raise ServerGone("the sandbox's fork server exited before it started the run")
    outputs = {name: bytes(buf) for name, buf in launched.buffers.items()}
    return Outcome(outputs, launched.truncated, returncode, cpu, timed_out, time.monotonic() - start, launched.workdir)


def _launch(server: Server, plan: Plan, spec: Spec, limits: Limits) -> _Run:
    names = ["uid"] + (["candidate_uid"] if spec.role == "asserts" else [])
    uids = {name: uid_pool.acquire() if plan.identity == "uid" else None for name in names}
    owner = uids.get("candidate_uid", uids["uid"])
    workdir = VIEW_WORKDIR if plan.view else _host_workdir(owner)
    given: dict[str, int] = {name: _sealed(data) for name, data in spec.files.items()}
    streams = {}
    for name in spec.streams:
        read_end, given[name] = os.pipe()
        streams[read_end] = name
    status, given["status"] = os.pipe()
    given["control"], control = os.pipe()
    request = {
        "role": spec.role, "fds": list(given), "workdir": workdir, "env": clean_env(workdir), "net": plan.net,
        "pid": plan.pid, "nproc": plan.nproc, "max_message": spec.max_message, "limits": dataclasses.asdict(limits),
        **uids,
    }  # fmt: skip
    launched = _Run(spec, uids, workdir, streams, status, control)
    launched.buffers = {name: bytearray() for name in spec.streams}
    try:
        server.send(request, list(given.values()))
    except BaseException:
        _finish(launched, plan)
        raise
    finally:
        for fd in given.values():  # the run holds them now
            os.close(fd)
    return launched


def _host_workdir(uid: int | None) -> str:
    """Without the private view: a fresh directory on the host, owned by the run's uid."""
    workdir = tempfile.mkdtemp(prefix="leafe-sbx-")
    if uid is not None:
        os.chown(workdir, uid, uid)
    os.chmod(workdir, 0o700)
    return workdir


def _sealed(data: bytes) -> int:
    """A memory file holding `data`, sealed read-only, its offset at the start."""
    fd = os.memfd_create("leafe-sandbox", os.MFD_CLOEXEC | os.MFD_ALLOW_SEALING)
    view = memoryview(data)
    while view:
        view = view[os.write(fd, view):]
    os.lseek(fd, 0, os.SEEK_SET)
    fcntl.fcntl(fd, fcntl.F_ADD_SEALS, fcntl.F_SEAL_WRITE | fcntl.F_SEAL_GROW | fcntl.F_SEAL_SHRINK | fcntl.F_SEAL_SEAL)
    return fd


def _watch(launched: _Run, limits: Limits, deadline: float) -> bool:
    """Read the run's streams until its supervisor is gone and they are all closed. At the
    deadline or when a stream exceeds its cap, have the run killed (and go on reading until
    the supervisor reports). Returns whether the deadline passed."""
    sel = selectors.DefaultSelector()
    for fd in list(launched.streams) + [launched.status]:
        os.set_blocking(fd, False)
        sel.register(fd, selectors.EVENT_READ)
    timed_out = killing = False
    try:
        while sel.get_map():
            now = time.monotonic()
            if not killing and (now >= deadline or launched.truncated):
                timed_out = not launched.truncated
                _kill(launched)
                killing, deadline = True, now + _GRACE_S
            elif killing and now >= deadline:
                log.error("a sandboxed run did not end within %g s of being killed", _GRACE_S)
                break
            for key, _ in sel.select(max(0.0, deadline - now)):
                _read(sel, key.fd, launched, limits.output_bytes)
    finally:
        sel.close()
    return timed_out


def _read(sel: selectors.BaseSelector, fd: int, launched: _Run, cap: int) -> None:
    try:
        chunk = os.read(fd, 1 << 16)
    except BlockingIOError:
        return
    if not chunk:
        sel.unregister(fd)
        launched.done = launched.done or fd == launched.status
        return
    if fd == launched.status:
        launched.status_text += chunk
        return
    name = launched.streams[fd]
    buf = launched.buffers[name]
    room = (REPORT_CAP if name == "report" else cap) - len(buf)
    buf += chunk[: max(room, 0)]
    if len(chunk) > room:
        launched.truncated.add(name)


def _kill(launched: _Run) -> None:
    try:
        os.write(launched.control, b"k")
    except OSError:
        pass  # its supervisor is already gone


def _finish(launched: _Run, plan: Plan) -> tuple[int | None, float]:
    """Parse the supervisor's report; kill what a lost supervisor left; release the uids,
    the working directory and the descriptors. Returns the exit status and CPU time."""
    pid = returncode = None
    cpu = 0.0
    for line in launched.status_text.decode("ascii", "replace").splitlines():
        parts = line.split()
        if parts[:1] == ["P"] and len(parts) == 2:
            pid = int(parts[1])
        elif parts[:1] == ["X"] and len(parts) == 3:
            returncode, cpu = os.waitstatus_to_exitcode(int(parts[1])), float(parts[2])
    if returncode is None and pid is not None:
        _kill_leftovers(plan, launched, pid)
    for fd in list(launched.streams) + [launched.status, launched.control]:
        os.close(fd)
    launched.streams.clear()
    if launched.workdir != VIEW_WORKDIR:
        shutil.rmtree(launched.workdir, ignore_errors=True)
    for uid in launched.uids.values():
        if uid is not None:
            uid_pool.release(uid)
    return returncode, cpu


def _kill_leftovers(plan: Plan, launched: _Run, pid: int) -> None:
    """Last resort when a supervisor died without reporting (with a PID namespace the
    run's init dies with the supervisor and the kernel kills the rest)."""
    log.warning("the supervisor of sandboxed pid %d did not report; killing what is left", pid)
    for uid in launched.uids.values():
        if uid is not None:
            kill_uid(uid)
    if all(uid is None for uid in launched.uids.values()) and (not plan.pid or live_pids(sid=pid)):
        kill_session(pid)
