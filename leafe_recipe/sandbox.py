"""Isolated execution of untrusted (model-written) Python programs.

Every program runs in its own fresh interpreter process, never inside the
caller, in a fresh temporary working directory that is deleted afterwards,
with an environment built from scratch (PATH, LANG, HOME=workdir,
PYTHONHASHSEED=0, ...: nothing of the caller's leaks in). On top of that,
whatever the kernel permits:

* resource limits (``setrlimit``): CPU time, address space, size of written
  files, open files, processes, no core dumps; plus a wall-clock deadline and a
  byte cap on stdout/stderr enforced by the parent while it reads the pipes;
* a dedicated unprivileged uid per concurrent run (when the caller is root):
  it owns only its working directory, cannot signal or ptrace the caller, and
  ``RLIMIT_NPROC`` (a per-uid count) bounds a fork bomb to this one run;
* a new network namespace (``unshare(CLONE_NEWNET)``): only a downed loopback,
  so every connection fails with "Network is unreachable";
* a new mount namespace in which the whole file system is re-mounted
  read-only (``mount_setattr(AT_RECURSIVE, MOUNT_ATTR_RDONLY)``) except the
  working directory: /tmp, /var/tmp, /dev/shm are not writable either (so
  POSIX semaphores, hence ``multiprocessing`` locks and queues, are
  unavailable; ``tempfile`` works, TMPDIR is the working directory);
* a new PID namespace whose init is the program: when the program exits or is
  killed, the kernel kills every process it left behind (double-forked and
  ``setsid`` daemons included) and reaps them, so "nothing left running" is
  guaranteed by the kernel rather than by a scan; a private ``/proc`` shows
  only the sandbox's own processes. Being init has two visible effects:
  signals the program sends to itself without a handler are ignored (so
  ``os.kill(os.getpid(), SIGKILL)`` does nothing), and the kernel's SIGXCPU is
  too, which is why the CPU limit is a hard one (SIGKILL).

A small supervisor (a fork of the launcher's child, left outside the PID
namespace, and a child subreaper) waits for the program and reports its exit
status; the parent kills the whole sandbox through it (deadline, output cap),
it kills the sandbox when the parent dies, and without a PID namespace it is
the one that kills and reaps what the program left behind.

The interpreter is ``python -s -B main.py`` (the first of
$LEAFE_SANDBOX_PYTHON, ``sys.executable``, ``python3`` on the standard PATH
that the sandbox uid can execute). It is not ``-I``: ``-I`` implies ``-E``,
which would drop PYTHONHASHSEED, and a fixed hash seed makes set and dict
iteration orders, hence outputs, reproducible (environments must replay
deterministically); ``-E`` protects nothing here, the environment being built
from scratch. stderr has the random working-directory path replaced, for the
same reason.

What is in force is probed once per process (:func:`isolation`) by running a
real program through the sandbox and recording what it observed; every
:class:`Execution` carries that record. Where a mechanism is not permitted (a
container without ``CAP_SYS_ADMIN``, a non-root caller without user
namespaces) the sandbox degrades to what is available, says so in
:class:`Isolation` and warns once; see :class:`Isolation` for the fallbacks.

Two program kinds are judged: stdin/stdout programs against expected outputs
(:func:`judge_stdio`, CodeContests) and code plus ``assert`` tests
(:func:`judge_asserts`, MBPP, HumanEval). :func:`judge_many` runs many of them
in a thread pool bounded by the cores (each run is its own process tree, so
threads suffice).
"""

from __future__ import annotations

import ctypes
import ctypes.util
import dataclasses
import enum
import errno
import fcntl
import json
import logging
import math
import os
import pwd
import re
import resource as _R
import secrets
import select
import selectors
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
import time
import warnings
from collections.abc import Callable, Iterable, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path

__all__ = [
    "AssertJob",
    "Execution",
    "Isolation",
    "Judgement",
    "Limits",
    "SandboxError",
    "StdioJob",
    "Verdict",
    "isolation",
    "judge_asserts",
    "judge_many",
    "judge_stdio",
    "outputs_match",
    "run_program",
    "sandbox_uids",
    "live_sandbox_processes",
]

log = logging.getLogger(__name__)

PROGRAM_NAME = "main.py"
"""File name of the program inside its working directory (tracebacks show it)."""


class SandboxError(RuntimeError):
    """The sandbox itself failed (not the program): setup, launch or cleanup."""


# --------------------------------------------------------------------------- #
# Limits, verdicts, results
# --------------------------------------------------------------------------- #


@dataclass(frozen=True)
class Limits:
    """Resource limits for one program run.

    ``cpu_s`` is enforced per process by RLIMIT_CPU (rounded up to whole
    seconds; SIGKILL at the limit); ``wall_s`` by the parent, which kills the
    whole sandbox at the deadline (it catches sleeping or blocked programs that
    use no CPU). ``memory_mb`` is RLIMIT_AS (virtual address space, per
    process): allocations beyond it fail, which Python reports as
    ``MemoryError``. ``output_bytes`` caps stdout and stderr each (the parent
    stops reading and kills the run) and, as RLIMIT_FSIZE, every file the
    program writes. ``nproc`` is RLIMIT_NPROC (processes and threads of the
    sandbox uid) and ``nofile`` RLIMIT_NOFILE.
    """

    cpu_s: float = 10.0
    wall_s: float = 20.0
    memory_mb: int = 2048
    output_bytes: int = 8 * 1024 * 1024
    nproc: int = 64
    nofile: int = 64

    def __post_init__(self) -> None:
        for name in ("cpu_s", "wall_s", "memory_mb", "output_bytes", "nproc", "nofile"):
            if getattr(self, name) <= 0:
                raise ValueError(f"Limits.{name} must be positive")


class Verdict(str, enum.Enum):
    """Outcome of judging a program (a str, so it serialises as its value)."""

    PASSED = "passed"
    WRONG_ANSWER = "wrong_answer"
    RUNTIME_ERROR = "runtime_error"
    TIMEOUT = "timeout"
    MEMORY_LIMIT = "memory_limit"
    OUTPUT_LIMIT = "output_limit"

    def __str__(self) -> str:  # "passed", not "Verdict.PASSED"
        return self.value


@dataclass(frozen=True)
class Isolation:
    """Which isolation mechanisms are in force, as verified by a probe run.

    ``uid``: the dedicated uid the programs run as (one per concurrent run,
    from :func:`sandbox_uids`); ``user_namespace``: the non-root way to get
    namespaces (``unshare(CLONE_NEWUSER | ...)``; inside it the program appears
    as uid 65534 but acts with the caller's uid on the host); ``network``,
    ``readonly_fs``, ``private_proc``: what the probe program observed
    (connect fails with ENETUNREACH, /tmp not writable, it is pid 1 and sees
    only itself in /proc); ``python``: the interpreter used.

    Fallbacks where a mechanism is not permitted:

    * ``uid is None``: the program runs as the caller's uid: the caller is not
      root (a root caller that cannot drop to a dedicated uid is refused with
      :class:`SandboxError` unless LEAFE_SANDBOX_ALLOW_ROOT=1). It can then
      signal the caller's processes unless in a PID namespace, and write
      wherever the caller can unless ``readonly_fs``. ``RLIMIT_NPROC`` is
      applied only inside a user namespace on Linux >= 5.14, where it counts
      per namespace (elsewhere it would count all the caller's processes).
    * ``network`` False: no network namespace; the program can open sockets.
    * ``readonly_fs`` False: no mount namespace; the file system is protected
      by permissions only (with a dedicated uid, world-writable directories
      such as /tmp stay writable).
    * ``pid_namespace`` False: the supervisor, a child subreaper to which
      every orphan of the program re-parents, kills what is left when the
      program exits (or at the deadline): with a dedicated uid first by a
      helper that becomes that uid and calls ``kill(-1, SIGKILL)`` (delivered
      atomically with respect to forks), then by killing its running children
      until none is left, reaping them only then (unreaped zombies keep their
      RLIMIT_NPROC slots, so a fork bomb cannot refill them meanwhile).
      Without a dedicated uid nor PID namespace the program can kill the
      supervisor (same uid); the parent then kills the program's session,
      which a daemon that called ``setsid`` escapes: do not run untrusted code
      in that mode.
    """

    uid: int | None
    user_namespace: bool
    network: bool
    readonly_fs: bool
    pid_namespace: bool
    private_proc: bool
    python: str
    python_version: str
    notes: tuple[str, ...] = ()

    @property
    def complete(self) -> bool:
        """True when every mechanism is in force (root with namespaces)."""
        return (
            self.uid is not None
            and self.network
            and self.readonly_fs
            and self.pid_namespace
            and self.private_proc
        )


@dataclass
class Execution:
    """Raw result of one program run (see :func:`run_program`).

    ``returncode`` is the program's exit status (negative: killed by that
    signal), ``None`` only if the sandbox could not learn it. ``stderr`` has
    the random working directory replaced by ``.`` so that it is the same
    from run to run (environments must be deterministic for replay).
    """

    stdout: str
    stderr: str
    returncode: int | None
    wall_s: float
    cpu_s: float
    timed_out: bool = False
    output_truncated: bool = False
    isolation: Isolation | None = None
    report: bytes = b""  # what the program wrote on its report pipe (only with run_program's `secret`)

    @property
    def signal(self) -> int | None:
        """The signal that killed the program, if one did."""
        if self.returncode is not None and self.returncode < 0:
            return -self.returncode
        return None

    @property
    def ok(self) -> bool:
        """Exited with status 0 within every limit."""
        return self.returncode == 0 and not self.timed_out and not self.output_truncated


@dataclass
class Judgement:
    """Verdict of a program on a test set.

    ``details`` is a human-readable explanation suitable as feedback to the
    model (truncated). ``failed_test`` is the 0-based index of the first failing
    test (for :func:`judge_asserts`: the index in the list of asserts, or the
    line of the tests text), ``None`` when passed or unknown. For wrong answers
    on stdio tests, ``input``, ``expected`` and ``actual`` hold the (truncated)
    texts.
    """

    verdict: Verdict
    details: str = ""
    failed_test: int | None = None
    tests_run: int = 0
    tests_passed: int = 0
    wall_s: float = 0.0
    input: str | None = None
    expected: str | None = None
    actual: str | None = None
    stderr: str = ""
    returncode: int | None = None

    @property
    def passed(self) -> bool:
        return self.verdict is Verdict.PASSED


# --------------------------------------------------------------------------- #
# Output comparison
# --------------------------------------------------------------------------- #

_INT_RE = re.compile(r"[+-]?\d+\Z")
_FLOAT_RE = re.compile(r"[+-]?(?:\d+\.?\d*|\.\d+)(?:[eE][+-]?\d+)?\Z")


def outputs_match(
    expected: str, actual: str, *, float_tol: float = 1e-6, case_sensitive: bool = False
) -> bool:
    """Whitespace-tolerant comparison of program output, token by token.

    Follows the official CodeContests checker (deepmind/code_contests,
    ``OutputsMatch`` in execution/tester_sandboxer.cc): both texts are split on
    any whitespace (so line breaks, trailing spaces and blank lines do not
    matter) and compared case-insensitively; two tokens match if they are
    equal, or if both are numbers and, when both are integers, equal as
    integers (exact, arbitrary precision), otherwise equal as floats within
    ``float_tol`` absolute *or* relative error (the official checker uses
    1e-5 absolute). Only plain decimal numbers count as numbers (no ``nan``,
    ``inf``, ``0x``, ``1_000``), so such words compare as text.
    """
    exp = expected.split()
    act = actual.split()
    if len(exp) != len(act):
        return False
    for e, a in zip(exp, act):
        if e == a:
            continue
        if not case_sensitive and e.lower() == a.lower():
            continue
        if not (_FLOAT_RE.match(e) and _FLOAT_RE.match(a)):
            return False
        if _INT_RE.match(e) and _INT_RE.match(a):
            if int(e) != int(a):
                return False
            continue
        try:
            fe, fa = float(e), float(a)
        except (OverflowError, ValueError):  # pragma: no cover - regex guards
            return False
        if not (math.isfinite(fe) and math.isfinite(fa)):
            return False
        if not math.isclose(fe, fa, rel_tol=float_tol, abs_tol=float_tol):
            return False
    return True


# --------------------------------------------------------------------------- #
# Low-level Linux plumbing (ctypes; Python 3.11 has no os.unshare)
# --------------------------------------------------------------------------- #

CLONE_NEWNS = 0x00020000
CLONE_NEWUSER = 0x10000000
CLONE_NEWPID = 0x20000000
CLONE_NEWNET = 0x40000000
MS_RDONLY = 1
MS_NOSUID = 2
MS_NODEV = 4
MS_NOEXEC = 8
MS_REMOUNT = 32
MS_BIND = 4096
MS_REC = 16384
MS_PRIVATE = 1 << 18
PR_SET_PDEATHSIG = 1
AT_FDCWD = -100
AT_RECURSIVE = 0x8000
MOUNT_ATTR_RDONLY = 0x1
SYS_MOUNT_SETATTR = 442  # same number on x86_64 and aarch64 (and all new-style tables)

_SAFE_PATH = "/usr/local/bin:/usr/bin:/bin"
_WORLD_WRITABLE_CANDIDATES = (
    "/tmp", "/var/tmp", "/dev/shm", "/run/shm", "/run/lock", "/var/lock", "/dev/mqueue",
)


class _MountAttr(ctypes.Structure):
    _fields_ = [
        ("attr_set", ctypes.c_uint64),
        ("attr_clr", ctypes.c_uint64),
        ("propagation", ctypes.c_uint64),
        ("userns_fd", ctypes.c_uint64),
    ]


class _Libc:
    """The few libc calls we need, bound once (so the child only *calls*)."""

    def __init__(self) -> None:
        lib = ctypes.CDLL(None, use_errno=True)  # the process's own libc
        if not hasattr(lib, "unshare"):  # pragma: no cover - unusual linking
            lib = ctypes.CDLL(ctypes.util.find_library("c"), use_errno=True)
        self.unshare = lib.unshare
        self.unshare.argtypes = [ctypes.c_int]
        self.mount = lib.mount
        self.mount.argtypes = [
            ctypes.c_char_p, ctypes.c_char_p, ctypes.c_char_p, ctypes.c_ulong, ctypes.c_void_p,
        ]
        self.prctl = lib.prctl
        self.prctl.argtypes = [ctypes.c_int, ctypes.c_ulong, ctypes.c_ulong, ctypes.c_ulong, ctypes.c_ulong]
        self.syscall = lib.syscall
        self.ro_attr = _MountAttr(MOUNT_ATTR_RDONLY, 0, 0, 0)


_libc: _Libc | None = None


def _get_libc() -> _Libc:
    global _libc
    if _libc is None:
        _libc = _Libc()
    return _libc


def _check(ret: int, what: str) -> None:
    if ret != 0:
        err = ctypes.get_errno()
        raise OSError(err, f"{what}: {os.strerror(err)}")


@dataclass(frozen=True)
class _Plan:
    """What the child does before exec (decided by the probe, then fixed)."""

    uid: int | None
    user_ns: bool
    net_ns: bool
    mount_ns: bool
    pid_ns: bool
    nproc: bool  # apply RLIMIT_NPROC (meaningful only per-uid or per-user-ns)


def _unshare_flags(plan: _Plan) -> int:
    flags = 0
    if plan.user_ns:
        flags |= CLONE_NEWUSER
    if plan.net_ns:
        flags |= CLONE_NEWNET
    if plan.mount_ns:
        flags |= CLONE_NEWNS
    if plan.pid_ns:
        flags |= CLONE_NEWPID
    return flags


def _make_readonly(libc: _Libc, workdir: bytes) -> None:
    """In a fresh mount namespace: everything read-only except ``workdir``."""
    _check(libc.mount(None, b"/", None, MS_REC | MS_PRIVATE, None), "make / private")
    attr = libc.ro_attr
    ret = libc.syscall(
        SYS_MOUNT_SETATTR, AT_FDCWD, b"/", AT_RECURSIVE, ctypes.byref(attr), ctypes.sizeof(attr)
    )
    if ret != 0:
        # Kernels before 5.12: re-mount the world-writable directories
        # read-only one by one (the rest is protected by permissions).
        for d in _WORLD_WRITABLE_CANDIDATES:
            if os.path.isdir(d) and not os.path.islink(d):
                p = d.encode()
                _check(libc.mount(p, p, None, MS_BIND | MS_REC, None), f"bind {d}")
                _check(
                    libc.mount(None, p, None, MS_REMOUNT | MS_BIND | MS_RDONLY, None),
                    f"remount {d} read-only",
                )
    _check(libc.mount(workdir, workdir, None, MS_BIND, None), "bind workdir")
    _check(libc.mount(None, workdir, None, MS_REMOUNT | MS_BIND, None), "remount workdir rw")


def _child_setup(plan: _Plan, limits: Limits, libc: _Libc) -> None:
    """Last steps in the process that execs the program (privileges dropped).

    Order matters: rlimits that root may raise are set before dropping the uid;
    PR_SET_PDEATHSIG (the program dies with its launcher) after it, since
    setuid clears it; RLIMIT_AS last, because until exec the child is still a
    copy of the (possibly huge) caller and must not fail to allocate.
    """
    # soft == hard: SIGKILL at the limit. (A soft limit's SIGXCPU would be
    # ignored anyway by the init of a PID namespace, which the program is.)
    cpu = max(1, math.ceil(limits.cpu_s))
    resource_limits = [
        (_R.RLIMIT_CPU, cpu, cpu),
        (_R.RLIMIT_FSIZE, limits.output_bytes, limits.output_bytes),
        (_R.RLIMIT_NOFILE, limits.nofile, limits.nofile),
        (_R.RLIMIT_CORE, 0, 0),
    ]
    if plan.nproc:
        resource_limits.append((_R.RLIMIT_NPROC, limits.nproc, limits.nproc))
    for res, soft, hard in resource_limits:
        _R.setrlimit(res, (soft, hard))
    if plan.uid is not None:
        os.setgroups([])
        os.setgid(plan.uid)
        os.setuid(plan.uid)
    libc.prctl(PR_SET_PDEATHSIG, signal.SIGKILL, 0, 0, 0)
    mem = limits.memory_mb * 1024 * 1024
    _R.setrlimit(_R.RLIMIT_AS, (mem, mem))


PR_SET_CHILD_SUBREAPER = 36


def _live_children_of(pid: int) -> list[int]:
    """Pids of the running (non-zombie) children of ``pid``, from /proc."""
    kids = []
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            with open(f"/proc/{entry}/stat", "rb") as f:
                fields = f.read().rsplit(b")", 1)[1].split()
            if int(fields[1]) == pid and fields[0] not in (b"Z", b"X"):
                kids.append(int(entry))
        except (OSError, IndexError, ValueError):
            continue
    return kids


def _kill_subtree(me: int, uid: int | None, deadline: float) -> None:
    """SIGKILL and reap every descendant of a subreaper ``me``.

    Orphans re-parent to the nearest subreaper, so every descendant is a
    child of ``me`` or below one: killing the running children repeatedly
    until none is left empties the subtree. Nothing is reaped before that:
    the zombies keep holding their RLIMIT_NPROC slots, so a fork bomb cannot
    refill them while we kill. With a dedicated uid, a helper first kills every
    process of that uid in one atomic ``kill(-1)``.
    """
    if uid is not None:
        helper = os.fork()
        if helper == 0:  # pragma: no cover - runs in the helper
            try:
                os.setgroups([])
                os.setgid(uid)
                os.setuid(uid)
                os.kill(-1, signal.SIGKILL)
            finally:
                os._exit(0)
        os.waitpid(helper, 0)
    delay = 0.0005
    while time.monotonic() < deadline:
        kids = _live_children_of(me)
        if not kids:
            break
        for k in kids:
            try:
                os.kill(k, signal.SIGKILL)
            except OSError:
                pass
        time.sleep(delay)
        delay = min(delay * 2, 0.01)
    while True:  # reap them all
        try:
            pid, _ = os.waitpid(-1, os.WNOHANG)
        except ChildProcessError:
            return
        if pid == 0:  # some still dying
            if time.monotonic() > deadline:
                return
            time.sleep(0.001)


def _supervisor(
    child: int, ctl_fd: int, status_fd: int, max_fd: int, kill_subtree: bool, uid: int | None
) -> None:
    """The program's supervisor: its parent, a fork of the launcher (never returns).

    It is a child subreaper, so everything the program leaves behind
    (double-forked daemons included) re-parents to it rather than to init. It
    waits for the program, and kills it when the parent asks (a byte on
    ``ctl_fd``) or dies (EOF on ``ctl_fd``). When the program is gone it
    kills and reaps whatever is left (in a PID namespace the kernel already
    did, and /proc shows that namespace, so it does not look), then reports
    the program's raw wait status and the CPU time of everything it reaped on
    ``status_fd``. Being a separate process, its reaping cannot steal the exit
    status of any other child of the caller.
    """
    code = 0
    try:
        keep = sorted((ctl_fd, status_fd))
        os.closerange(0, keep[0])
        os.closerange(keep[0] + 1, keep[1])
        os.closerange(keep[1] + 1, max_fd)
        os.write(status_fd, f"{child}\n".encode())
        try:
            pidfd: int | None = os.pidfd_open(child)
        except (AttributeError, OSError):
            pidfd = None
        poller = select.poll()
        poller.register(ctl_fd, select.POLLIN)
        if pidfd is not None:
            poller.register(pidfd, select.POLLIN)
        killed = False
        while True:
            events = poller.poll(None if pidfd is not None else 10)
            if any(fd == ctl_fd for fd, _ in events) and not killed:
                os.kill(child, signal.SIGKILL)
                killed = True
                poller.unregister(ctl_fd)
            pid, status, _ = os.wait4(child, os.WNOHANG)
            if pid == child:
                break
        if kill_subtree:
            _kill_subtree(os.getpid(), uid, time.monotonic() + 10.0)
        usage = _R.getrusage(_R.RUSAGE_CHILDREN)
        cpu = usage.ru_utime + usage.ru_stime
        os.write(status_fd, f"{status} {cpu:.6f}\n".encode())
    except BaseException:  # pragma: no cover - must never return into exec
        code = 1
    finally:
        os._exit(code)


def _make_preexec(plan: _Plan, limits: Limits, workdir: str, ctl_fd: int, status_fd: int) -> Callable[[], None]:
    """Build the function run in the forked child before exec.

    Everything is computed here, so that the child only makes system calls.
    The child sets up the namespaces, then forks: the parent side becomes the
    supervisor, the child side drops privileges and execs the program.
    """
    libc = _get_libc()
    flags = _unshare_flags(plan)
    wd = workdir.encode()
    max_fd = _R.getrlimit(_R.RLIMIT_NOFILE)[0]
    if not 0 < max_fd <= 1 << 20:
        max_fd = 1 << 20

    def preexec() -> None:
        if flags:
            _check(libc.unshare(flags), "unshare")
        if plan.mount_ns:
            _make_readonly(libc, wd)
            os.chdir(wd)  # the cwd still pointed into the read-only mount
        _check(libc.prctl(PR_SET_CHILD_SUBREAPER, 1, 0, 0, 0), "PR_SET_CHILD_SUBREAPER")
        child = os.fork()
        if child:
            _supervisor(child, ctl_fd, status_fd, max_fd, kill_subtree=not plan.pid_ns, uid=plan.uid)
        # The program (with a PID namespace: its init; getppid() is then 0).
        libc.prctl(PR_SET_PDEATHSIG, signal.SIGKILL, 0, 0, 0)
        os.close(ctl_fd)
        os.close(status_fd)
        os.setsid()  # its own session: kill(0, ...) must not reach the supervisor
        if plan.pid_ns and plan.mount_ns:
            # A /proc of this namespace only (best effort: refused in some
            # containers whose /proc is partly masked).
            libc.mount(b"proc", b"/proc", b"proc", MS_NOSUID | MS_NODEV | MS_NOEXEC, None)
        _child_setup(plan, limits, libc)

    return preexec


# --------------------------------------------------------------------------- #
# Dedicated uids: one per concurrent run, locked across processes
# --------------------------------------------------------------------------- #

UID_BASE = int(os.environ.get("LEAFE_SANDBOX_UID_BASE", "61000"))
UID_COUNT = int(os.environ.get("LEAFE_SANDBOX_UID_COUNT", "128"))


def sandbox_uids() -> range:
    """The uids the sandbox may run programs as (when the caller is root).

    Default 61000-61127, below systemd's DynamicUser range (61184-65519);
    override with LEAFE_SANDBOX_UID_BASE / LEAFE_SANDBOX_UID_COUNT. Uids that
    exist in the user database are skipped. Each uid is held by one run at a
    time (an flock shared by all processes on the machine), which is what makes
    RLIMIT_NPROC (a per-uid count) per-run and killing "every process of the
    uid" safe.
    """
    return range(UID_BASE, UID_BASE + UID_COUNT)


class _UidPool:
    def __init__(self) -> None:
        self._lock = threading.Condition()
        self._free: list[int] = []  # uids this process holds and is not using
        self._held: dict[int, int] = {}  # uid -> lock fd
        self._dir: str | None = None

    def _lock_dir(self) -> str:
        if self._dir is None:
            base = "/run" if os.access("/run", os.W_OK) else tempfile.gettempdir()
            d = os.path.join(base, f"leafe-sandbox-{os.geteuid()}")
            os.makedirs(d, mode=0o700, exist_ok=True)
            st = os.stat(d)
            if st.st_uid != os.geteuid() or st.st_mode & 0o077:
                raise SandboxError(f"uid lock directory {d} is not private to us")
            self._dir = d
        return self._dir

    def _claim_new(self) -> int | None:
        d = self._lock_dir()
        for uid in sandbox_uids():
            if uid in self._held:
                continue
            try:
                pwd.getpwuid(uid)
                continue  # a real account: never borrow it
            except KeyError:
                pass
            fd = os.open(os.path.join(d, f"{uid}.lock"), os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o600)
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError:
                os.close(fd)
                continue
            self._held[uid] = fd
            # Whatever still runs under this uid is a leftover of a crashed run.
            if _live_pids(uids={uid}):
                log.warning("sandbox uid %d had leftover processes; killing them", uid)
                _kill_uid(uid)
            return uid
        return None

    def acquire(self) -> int:
        with self._lock:
            while True:
                if self._free:
                    return self._free.pop()
                uid = self._claim_new()
                if uid is not None:
                    return uid
                self._lock.wait(0.05)  # all slots busy (here or elsewhere)

    def release(self, uid: int) -> None:
        with self._lock:
            self._free.append(uid)
            self._lock.notify()


_uid_pool = _UidPool()


# --------------------------------------------------------------------------- #
# Process scans and kills
# --------------------------------------------------------------------------- #


def _proc_status(pid: str) -> tuple[int, str, int] | None:
    """(real uid, state letter, session id) of a /proc entry, None if gone."""
    try:
        with open(f"/proc/{pid}/status", "rb") as f:
            text = f.read().decode("ascii", "replace")
        with open(f"/proc/{pid}/stat", "rb") as f:
            stat = f.read().decode("ascii", "replace")
    except OSError:
        return None
    uid = state = None
    for line in text.splitlines():
        if line.startswith("Uid:"):
            uid = int(line.split()[1])
        elif line.startswith("State:"):
            state = line.split()[1]
    try:
        sid = int(stat.rsplit(")", 1)[1].split()[3])
    except (IndexError, ValueError):
        sid = -1
    if uid is None or state is None:
        return None
    return uid, state, sid


def _live_pids(*, uids: set[int] | None = None, sid: int | None = None) -> list[int]:
    """Pids of non-zombie processes with one of ``uids`` or in session ``sid``."""
    found = []
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        st = _proc_status(entry)
        if st is None or st[1] in ("Z", "X"):
            continue
        if (uids is not None and st[0] in uids) or (sid is not None and st[2] == sid):
            found.append(int(entry))
    return found


def live_sandbox_processes() -> list[int]:
    """Pids (host view) of running processes under any sandbox uid (root mode).

    Zombies are not counted: they run nothing. Used by the tests to check that
    nothing is left running after a run.
    """
    return _live_pids(uids=set(sandbox_uids()))


def _kill_uid(uid: int, timeout: float = 5.0) -> None:
    """SIGKILL every process of ``uid``, and wait until none is running.

    A forked helper becomes ``uid`` and calls ``kill(-1, SIGKILL)``, which the
    kernel delivers to every process of that uid in one pass, forks in flight
    included; the /proc scan then waits for them to die (and repeats the kill
    if something survived).
    """
    deadline = time.monotonic() + timeout
    delay = 0.001
    while True:
        pid = os.fork()
        if pid == 0:  # pragma: no cover - runs in the helper
            try:
                os.setgroups([])
                os.setgid(uid)
                os.setuid(uid)
                os.kill(-1, signal.SIGKILL)
            except BaseException:
                pass
            os._exit(0)
        os.waitpid(pid, 0)
        if not _live_pids(uids={uid}):
            return
        if time.monotonic() > deadline:
            log.error("processes of sandbox uid %d survive SIGKILL", uid)
            return
        time.sleep(delay)
        delay = min(delay * 2, 0.05)


def _kill_session(sid: int, timeout: float = 5.0) -> None:
    """SIGKILL the process group and every process of session ``sid``."""
    deadline = time.monotonic() + timeout
    while True:
        try:
            os.killpg(sid, signal.SIGKILL)
        except OSError:
            pass
        pids = _live_pids(sid=sid)
        if not pids:
            return
        for p in pids:
            try:
                os.kill(p, signal.SIGKILL)
            except OSError:
                pass
        if time.monotonic() > deadline:
            log.error("processes of sandbox session %d survive SIGKILL", sid)
            return
        time.sleep(0.005)


# --------------------------------------------------------------------------- #
# Probe: what does this machine allow?
# --------------------------------------------------------------------------- #

_PROBE_PROGRAM = r"""
import os, socket, sys, json
r = {"uid": os.getuid(), "version": "%d.%d.%d" % sys.version_info[:3]}
try:
    socket.create_connection(("127.0.0.1", 9), timeout=0.5).close()
    r["net"] = "connected"
except OSError as e:
    r["net"] = e.errno
try:
    open("/tmp/leafe-sandbox-probe-%d" % os.getpid(), "w").close()
    os.unlink("/tmp/leafe-sandbox-probe-%d" % os.getpid())
    r["tmp_writable"] = True
except OSError:
    r["tmp_writable"] = False
open("cwd-ok", "w").close()
r["pids"] = len([p for p in os.listdir("/proc") if p.isdigit()])
r["pid"] = os.getpid()
print(json.dumps(r))
"""

_isolation_lock = threading.Lock()
_isolation: Isolation | None = None
_plan: _Plan | None = None


def _python_candidates() -> list[str]:
    cands = []
    env = os.environ.get("LEAFE_SANDBOX_PYTHON")
    if env:
        return [env]
    cands += [sys.executable, os.path.realpath(sys.executable)]
    for name in ("python3", "python"):
        p = shutil.which(name, path=_SAFE_PATH)
        if p:
            cands.append(os.path.realpath(p))
    seen: list[str] = []
    for c in cands:
        if c and c not in seen:
            seen.append(c)
    return seen


def _kernel_at_least(major: int, minor: int) -> bool:
    m = re.match(r"(\d+)\.(\d+)", os.uname().release)
    return bool(m) and (int(m.group(1)), int(m.group(2))) >= (major, minor)


def _probe() -> tuple[_Plan, Isolation]:
    """Find the strongest plan that launches a real program, and what it saw.

    LEAFE_SANDBOX_DISABLE (comma-separated: uid, userns, net, mount, pid)
    leaves mechanisms out, to test the fallbacks or to work around a problem.
    A root caller that cannot drop to a dedicated uid gets a SandboxError
    unless LEAFE_SANDBOX_ALLOW_ROOT=1.

    Candidates, strongest first: a dedicated uid (root only; else a user
    namespace) and every subset of {network, mount, pid} namespaces. A set-up
    step the kernel refuses makes the child fail before exec, and the next
    candidate is tried. The probe program then reports what it observed
    (connect error, whether /tmp is writable, its pid and the /proc it sees),
    so :class:`Isolation` records verified facts rather than intentions.
    """
    disabled = {w.strip() for w in os.environ.get("LEAFE_SANDBOX_DISABLE", "").split(",") if w.strip()}
    unknown = disabled - {"uid", "userns", "net", "mount", "pid"}
    if unknown:
        raise SandboxError(f"LEAFE_SANDBOX_DISABLE: unknown mechanisms {sorted(unknown)}")
    root = os.geteuid() == 0
    uid = _uid_pool.acquire() if root and "uid" not in disabled else None
    combos = sorted(
        (
            (n, m, p)
            for n in (True, False) for m in (True, False) for p in (True, False)
            if not (n and "net" in disabled or m and "mount" in disabled or p and "pid" in disabled)
        ),
        key=lambda c: -sum(c),
    )
    # (uid, user namespace) options, strongest first; the last resort is the
    # caller's own uid without a user namespace.
    identities: list[tuple[int | None, bool]] = []
    if uid is not None:
        identities.append((uid, False))
    if not root or os.environ.get("LEAFE_SANDBOX_ALLOW_ROOT") == "1":
        # As root, without a dedicated uid the program would run as root (a
        # user namespace does not change that on the host): RLIMIT_NPROC does
        # not bind root and, without a PID namespace, kill(-1) kills the
        # machine. Only on explicit request.
        if "userns" not in disabled:
            identities.append((None, True))
        identities.append((None, False))
    notes: list[str] = []
    last_error: BaseException | None = None
    try:
        for python in _python_candidates():
            exec_failed = False
            for ident_uid, user_ns in identities:
                for net, mnt, pid in combos:
                    if user_ns and not (net or mnt or pid):
                        continue
                    plan = _Plan(
                        uid=ident_uid, user_ns=user_ns, net_ns=net, mount_ns=mnt, pid_ns=pid,
                        nproc=ident_uid is not None or (user_ns and _kernel_at_least(5, 14)),
                    )
                    try:
                        ex = _run(plan, python, _PROBE_PROGRAM, "", _PROBE_LIMITS, None)
                    except subprocess.SubprocessError as e:  # set-up refused in the child
                        last_error = e
                        continue
                    except OSError as e:  # exec failed: this interpreter is unusable
                        last_error = e
                        exec_failed = True
                        break
                    if ex.returncode != 0:
                        last_error = SandboxError(f"probe program failed: {ex.stderr[-500:]}")
                        continue
                    seen = json.loads(ex.stdout)
                    if root and ident_uid is None:
                        notes.append("could not drop to a dedicated uid: programs run as root")
                    network = net and seen["net"] in (errno.ENETUNREACH, errno.EADDRNOTAVAIL)
                    if net and not network:
                        notes.append(f"network namespace did not isolate (connect: {seen['net']})")
                    iso = Isolation(
                        uid=ident_uid,
                        user_namespace=user_ns,
                        network=network,
                        readonly_fs=mnt and not seen["tmp_writable"],
                        pid_namespace=pid,
                        private_proc=pid and mnt and seen["pid"] == 1 and seen["pids"] <= 2,
                        python=python,
                        python_version=seen["version"],
                        notes=tuple(notes),
                    )
                    return plan, iso
                if exec_failed:
                    break
            notes.append(f"interpreter {python} unusable in the sandbox: {last_error}")
        if root and not identities:
            raise SandboxError(
                "running as root but cannot run programs under a dedicated uid "
                f"({'disabled' if 'uid' in disabled else last_error}); refusing to run them as root "
                "(set LEAFE_SANDBOX_ALLOW_ROOT=1 to do it anyway)"
            )
        raise SandboxError(f"cannot launch a sandboxed program: {last_error}; {notes}")
    finally:
        if uid is not None:
            _uid_pool.release(uid)


_PROBE_LIMITS = Limits(cpu_s=5, wall_s=20, memory_mb=512)


def isolation() -> Isolation:
    """The isolation in force in this process (probed once, then cached)."""
    global _isolation, _plan
    with _isolation_lock:
        if _isolation is None:
            _plan, _isolation = _probe()
            if not _isolation.complete:
                missing = [
                    name
                    for name, ok in (
                        ("dedicated uid", _isolation.uid is not None),
                        ("network namespace", _isolation.network),
                        ("read-only file system", _isolation.readonly_fs),
                        ("pid namespace", _isolation.pid_namespace),
                        ("private /proc", _isolation.private_proc),
                    )
                    if not ok
                ]
                warnings.warn(
                    "leafe_recipe.sandbox: running without " + ", ".join(missing)
                    + " (not permitted here); see sandbox.Isolation for what that means",
                    RuntimeWarning,
                    stacklevel=2,
                )
            log.info("sandbox isolation: %s", _isolation)
        return _isolation


# --------------------------------------------------------------------------- #
# Running one program
# --------------------------------------------------------------------------- #


def _clean_env(workdir: str) -> dict[str, str]:
    """Environment built from scratch: nothing of the caller's leaks in."""
    return {
        "PATH": _SAFE_PATH,
        "LANG": "C.UTF-8",
        "LC_ALL": "C.UTF-8",
        "HOME": workdir,
        "TMPDIR": workdir,
        "PYTHONHASHSEED": "0",
        "PYTHONIOENCODING": "utf-8",
        "PYTHONDONTWRITEBYTECODE": "1",
        "OMP_NUM_THREADS": "1",
        "OPENBLAS_NUM_THREADS": "1",
        "MKL_NUM_THREADS": "1",
    }


def _normalise_source(code: str) -> str:
    # Python's tokenizer reads \r\n and \r as newlines too; normalising first
    # keeps our line arithmetic (which test failed) equal to the tokenizer's.
    return code.replace("\r\n", "\n").replace("\r", "\n")


def run_program(code: str, stdin: str = "", limits: Limits | None = None, *, secret: bytes | None = None) -> Execution:
    """Run ``code`` as a fresh sandboxed Python program, feeding it ``stdin``.

    With ``secret``, the program also gets two pipes, named by the environment variable
    ``LEAFE_JUDGE_FDS="<read fd>,<write fd>"``: the first holds ``secret`` (then EOF), what
    it writes on the second comes back as ``Execution.report`` (see :func:`judge_asserts`).
    Returns the raw :class:`Execution`; never raises for anything the program
    does (only :class:`SandboxError` when the sandbox itself cannot work).
    """
    limits = limits or Limits()
    iso = isolation()
    assert _plan is not None
    uid = _uid_pool.acquire() if _plan.uid is not None else None
    try:
        plan = dataclasses.replace(_plan, uid=uid)
        return _run(plan, iso.python, code, stdin, limits, iso, secret)
    finally:
        if uid is not None:
            _uid_pool.release(uid)


def _run(
    plan: _Plan, python: str, code: str, stdin: str, limits: Limits, iso: Isolation | None, secret: bytes | None = None
) -> Execution:
    workdir = tempfile.mkdtemp(prefix="leafe-sbx-")
    try:
        prog = os.path.join(workdir, PROGRAM_NAME)
        with open(prog, "w", encoding="utf-8", errors="surrogateescape") as f:
            f.write(_normalise_source(code))
        os.chmod(prog, 0o644)
        if plan.uid is not None:
            os.chown(workdir, plan.uid, plan.uid)
        os.chmod(workdir, 0o700)
        with tempfile.TemporaryFile() as stdin_file:
            stdin_file.write(stdin.encode("utf-8", errors="surrogateescape"))
            stdin_file.seek(0)
            return _launch_and_wait(plan, python, workdir, stdin_file, limits, iso, secret)
    finally:
        shutil.rmtree(workdir, ignore_errors=True)


def _launch_and_wait(
    plan: _Plan, python: str, workdir: str, stdin_file, limits: Limits, iso: Isolation | None, secret: bytes | None
) -> Execution:
    ctl_r, ctl_w = os.pipe()  # parent -> supervisor: "kill now" (or EOF: we died)
    st_r, st_w = os.pipe()  # supervisor -> parent: program pid, then its status
    env = _clean_env(workdir)
    child_ends, rep_r = [ctl_r, st_w], None
    if secret is not None:
        sec_r, sec_w = os.pipe()  # judge -> program: the secret, then EOF
        rep_r, rep_w = os.pipe()  # program -> judge: its report
        os.write(sec_w, secret)  # far below the pipe's capacity: never blocks
        os.close(sec_w)
        child_ends += [sec_r, rep_w]
        env["LEAFE_JUDGE_FDS"] = f"{sec_r},{rep_w}"
    argv = [python, "-s", "-B", PROGRAM_NAME]
    start = time.monotonic()
    deadline = start + limits.wall_s
    try:
        proc = subprocess.Popen(
            argv,
            stdin=stdin_file,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            cwd=workdir,
            env=env,
            close_fds=True,
            pass_fds=tuple(child_ends),
            start_new_session=True,
            preexec_fn=_make_preexec(plan, limits, workdir, ctl_r, st_w),
        )
    except BaseException:
        os.close(ctl_w)
        os.close(st_r)
        if rep_r is not None:
            os.close(rep_r)
        raise
    finally:
        for fd in child_ends:
            os.close(fd)
    try:
        out, err, timed_out, truncated = _communicate(proc, limits, deadline)
        wall = time.monotonic() - start
        _terminate(proc, ctl_w)  # whatever the reason we stopped: nothing may be left
        program_pid, status, cpu = _reap(proc, st_r)
        if status is None or (plan.uid is not None and not plan.pid_ns and _live_pids(uids={plan.uid})):
            # The supervisor did not complete (it was killed): clean up from here.
            log.warning("sandbox supervisor %d did not report; killing leftovers", proc.pid)
            _kill_leftovers(plan, program_pid)
        report = _read_available(rep_r) if rep_r is not None else b""
    finally:
        os.close(ctl_w)
        os.close(st_r)
        if rep_r is not None:
            os.close(rep_r)
        for stream in (proc.stdout, proc.stderr):
            if stream is not None:
                stream.close()
    returncode = None if status is None else os.waitstatus_to_exitcode(status)
    if returncode is not None and returncode < 0 and -returncode == signal.SIGXFSZ:
        truncated = True
    stderr = err.decode("utf-8", errors="replace").replace(workdir + "/", "").replace(workdir, ".")
    return Execution(
        stdout=out.decode("utf-8", errors="replace"),
        stderr=stderr,
        returncode=returncode,
        wall_s=wall,
        cpu_s=cpu,
        timed_out=timed_out,
        output_truncated=truncated,
        isolation=iso,
        report=report,
    )


def _read_available(fd: int, limit: int = 1 << 16) -> bytes:
    """What is in a pipe now (everything that wrote to it is gone), up to `limit` bytes."""
    os.set_blocking(fd, False)
    data = b""
    while len(data) < limit:
        try:
            chunk = os.read(fd, limit - len(data))
        except BlockingIOError:
            break
        if not chunk:
            break
        data += chunk
    return data


def _exited(proc: subprocess.Popen) -> bool:
    """Has the launched process (the supervisor) exited? (without reaping it)"""
    try:
        info = os.waitid(os.P_PID, proc.pid, os.WEXITED | os.WNOHANG | os.WNOWAIT)
    except ChildProcessError:
        return True
    return info is not None


def _communicate(proc: subprocess.Popen, limits: Limits, deadline: float) -> tuple[bytes, bytes, bool, bool]:
    """Read stdout/stderr until everything is done, the deadline or the cap.

    "Done" is the supervisor's exit, which comes after the program's and after
    every process it left behind is dead, so the pipes then reach EOF.
    """
    bufs = {"out": bytearray(), "err": bytearray()}
    cap = limits.output_bytes
    sel = selectors.DefaultSelector()
    assert proc.stdout is not None and proc.stderr is not None
    for name, stream in (("out", proc.stdout), ("err", proc.stderr)):
        os.set_blocking(stream.fileno(), False)
        sel.register(stream.fileno(), selectors.EVENT_READ, name)
    open_streams = 2
    pidfd: int | None
    try:
        pidfd = os.pidfd_open(proc.pid)
        sel.register(pidfd, selectors.EVENT_READ, "exit")
    except (AttributeError, OSError):
        pidfd = None
    exited = False
    timed_out = truncated = False
    try:
        while not (exited and open_streams == 0):
            now = time.monotonic()
            if now >= deadline:
                timed_out = True
                break
            wait = deadline - now
            if pidfd is None and not exited:
                wait = min(wait, 0.005)
            for key, _ in sel.select(wait):
                if key.data == "exit":
                    exited = True
                    sel.unregister(key.fd)
                    continue
                try:
                    chunk = os.read(key.fd, 1 << 16)
                except BlockingIOError:
                    continue
                if not chunk:
                    sel.unregister(key.fd)
                    open_streams -= 1
                    continue
                buf = bufs[key.data]
                room = cap - len(buf)
                buf += chunk[: max(room, 0)]
                if len(chunk) > room:
                    truncated = True
            if truncated:
                break
            if pidfd is None and not exited:
                exited = _exited(proc)
    finally:
        sel.close()
        if pidfd is not None:
            os.close(pidfd)
    return bytes(bufs["out"]), bytes(bufs["err"]), timed_out, truncated


def _kill_leftovers(plan: _Plan, program_pid: int | None) -> None:
    """Last resort when the supervisor could not do its job."""
    if plan.uid is not None:
        _kill_uid(plan.uid)
    elif not plan.pid_ns and program_pid is not None:
        _kill_session(program_pid)
    # With a PID namespace the program (its init) dies with the supervisor
    # (PR_SET_PDEATHSIG), and the kernel then kills the rest.


def _terminate(proc: subprocess.Popen, ctl_w: int) -> None:
    """Have the supervisor kill the program and everything it started."""
    if _exited(proc):
        return
    try:
        os.write(ctl_w, b"k")
    except OSError:
        pass
    end = time.monotonic() + 15.0
    delay = 0.0005
    while not _exited(proc):
        if time.monotonic() > end:  # pragma: no cover - supervisor wedged
            log.error("sandbox supervisor %d did not exit; killing it", proc.pid)
            proc.kill()
            return
        time.sleep(delay)
        delay = min(delay * 2, 0.01)


def _reap(proc: subprocess.Popen, st_r: int) -> tuple[int | None, int | None, float]:
    """Reap the supervisor; return the program's pid, wait status and CPU time.

    The status is None if the supervisor died before reporting it.
    """
    _, wstatus, usage = os.wait4(proc.pid, 0)
    proc.returncode = os.waitstatus_to_exitcode(wstatus)  # so Popen won't wait again
    data = b""
    while True:
        chunk = os.read(st_r, 256)
        if not chunk:
            break
        data += chunk
    lines = data.decode("ascii", "replace").split("\n")
    program_pid = int(lines[0]) if lines[0].isdigit() else None
    try:
        raw, cpu = lines[1].split()
        return program_pid, int(raw), float(cpu)
    except (IndexError, ValueError):
        return program_pid, None, usage.ru_utime + usage.ru_stime


# --------------------------------------------------------------------------- #
# Judging
# --------------------------------------------------------------------------- #

_MEMORY_PATTERNS = ("MemoryError", "Cannot allocate memory", "std::bad_alloc", "out of memory")


def _truncate(text: str, limit: int = 1000) -> str:
    if len(text) <= limit:
        return text
    return text[:limit] + f"\n... [{len(text) - limit} more characters]"


def _tail(text: str, lines: int = 20, limit: int = 2000) -> str:
    kept = "\n".join(text.rstrip("\n").splitlines()[-lines:])
    if len(kept) > limit:
        kept = "... " + kept[-limit:]
    return kept


def _signal_name(sig: int) -> str:
    try:
        return signal.Signals(sig).name
    except ValueError:
        return f"signal {sig}"


def _failure_verdict(ex: Execution, limits: Limits) -> tuple[Verdict, str] | None:
    """Verdict for a run that did not finish normally; None if it exited 0."""
    tail = _tail(ex.stderr)
    sig = ex.signal
    if ex.timed_out:
        return Verdict.TIMEOUT, f"Time limit exceeded (wall clock {limits.wall_s:g} s)."
    # RLIMIT_CPU kills with SIGKILL at ceil(cpu_s); rusage agrees with the
    # kernel's limit check to within a few per cent.
    cpu_killed = sig == signal.SIGKILL and ex.cpu_s >= 0.95 * math.ceil(limits.cpu_s)
    if sig == signal.SIGXCPU or cpu_killed:
        return Verdict.TIMEOUT, f"Time limit exceeded (CPU {limits.cpu_s:g} s)."
    if ex.output_truncated or "File too large" in tail:
        return Verdict.OUTPUT_LIMIT, f"Output limit exceeded ({limits.output_bytes} bytes)."
    if ex.returncode != 0 and any(p in tail for p in _MEMORY_PATTERNS):
        return Verdict.MEMORY_LIMIT, f"Memory limit exceeded ({limits.memory_mb} MB).\n{tail}"
    if ex.returncode is None:
        return Verdict.RUNTIME_ERROR, "The program's exit status was lost."
    if sig is not None:
        msg = f"Killed by {_signal_name(sig)}."
        return Verdict.RUNTIME_ERROR, msg + ("\n" + tail if tail else "")
    if ex.returncode != 0:
        return Verdict.RUNTIME_ERROR, tail or f"Exit status {ex.returncode}."
    return None


def judge_stdio(
    code: str,
    tests: Sequence[tuple[str, str]],
    limits: Limits | None = None,
    stop_at_first_failure: bool = True,
    *,
    float_tol: float = 1e-6,
) -> Judgement:
    """Judge a stdin/stdout program on ``(input, expected_output)`` pairs.

    One fresh process per test (so tests cannot leak state into each other);
    the outputs are compared with :func:`outputs_match`. The verdict is that of
    the first failing test; with ``stop_at_first_failure=False`` every test is
    run (``tests_passed`` then counts them all).
    """
    limits = limits or Limits()
    first: Judgement | None = None
    passed = run = 0
    wall = 0.0
    for i, (inp, expected) in enumerate(tests):
        ex = run_program(code, inp, limits)
        run += 1
        wall += ex.wall_s
        failure = _failure_verdict(ex, limits)
        if failure is None and outputs_match(expected, ex.stdout, float_tol=float_tol):
            passed += 1
            continue
        if first is None:
            if failure is not None:
                verdict, details = failure
                first = Judgement(
                    verdict, f"Test {i + 1}: {details}", failed_test=i,
                    input=_truncate(inp), stderr=_tail(ex.stderr), returncode=ex.returncode,
                )
            else:
                first = Judgement(
                    Verdict.WRONG_ANSWER,
                    f"Test {i + 1}: wrong answer.\nInput:\n{_truncate(inp, 500)}\n"
                    f"Expected output:\n{_truncate(expected, 500)}\n"
                    f"Program output:\n{_truncate(ex.stdout, 500)}",
                    failed_test=i,
                    input=_truncate(inp),
                    expected=_truncate(expected),
                    actual=_truncate(ex.stdout),
                    stderr=_tail(ex.stderr),
                    returncode=ex.returncode,
                )
        if stop_at_first_failure:
            break
    result = first or Judgement(Verdict.PASSED, f"All {run} tests passed.")
    result.tests_run, result.tests_passed, result.wall_s = run, passed, wall
    return result


_HARNESS = Path(__file__).with_name("judge_harness.py")
_TRACE_LINE = re.compile(r'File "(?:\./)?solution\.py", line (\d+)')


def judge_asserts(
    code: str,
    tests: str | Sequence[str],
    limits: Limits | None = None,
    *,
    setup: str = "",
    entry_point: str | None = None,
) -> Judgement:
    """Judge function code against ``assert`` tests: passes if every test runs to the end.

    The program is ``code``, then ``setup``, then ``tests`` (joined by newlines if a
    list), then ``check(entry_point)`` if ``entry_point`` is given (HumanEval's
    convention), run by the harness in ``judge_harness.py``. It passes only if the
    harness hands back a secret that this call generated and that no code of the
    submission can read: exiting early by any means (``sys.exit``, ``os._exit(97)``, an
    ``atexit`` hook), or handing the tests a value of its own making (an object whose
    ``__eq__`` is always true), or patching what the tests use (``builtins``, the standard
    library) is never judged ``passed`` (the harness's docstring has the whole list). A
    failing ``assert`` gives ``wrong_answer`` with the assert's line; any other exception
    ``runtime_error``. ``failed_test`` is the index of the failing test in the list (or
    the 0-based line in the tests text), found from the traceback's last frame in the
    tests.
    """
    limits = limits or Limits()
    test_list = [tests] if isinstance(tests, str) else list(tests)
    head = _normalise_source(code) + "\n" + _normalise_source(setup) + "\n"
    body = "\n".join(_normalise_source(t) for t in test_list)
    payload = {"code": _normalise_source(code), "setup": _normalise_source(setup), "tests": body, "entry_point": entry_point}
    program = _HARNESS.read_text() + f"\n\n_judge({payload!r})\n"
    secret = secrets.token_hex(32).encode()
    ex = run_program(program, "", limits, secret=secret)
    completed = ex.report == secret and not ex.timed_out and not ex.output_truncated
    failure = None if completed else _failure_verdict(ex, limits)
    if failure is None and not completed:
        failure = Verdict.RUNTIME_ERROR, "The program exited before all the tests ran."
    n = len(test_list)
    if failure is None:
        j = Judgement(Verdict.PASSED, f"All {n} tests passed.", tests_run=n, tests_passed=n)
        j.wall_s = ex.wall_s
        return j
    verdict, details = failure
    failed_test = None
    line_text = None
    first_test_line = head.count("\n") + 1  # 1-based line of the first test
    body_lines = body.split("\n")
    # The innermost traceback frame that lies in the tests (a failure inside
    # the solution is attributed to the test that called it).
    for lineno in reversed([int(n) for n in _TRACE_LINE.findall(ex.stderr)]):
        rel = lineno - first_test_line  # 0-based within the tests
        if 0 <= rel < len(body_lines):
            line_text = body_lines[rel].strip()
            if isinstance(tests, str):
                failed_test = rel
            else:
                acc = 0
                for idx, t in enumerate(test_list):
                    acc += _normalise_source(t).count("\n") + 1
                    if rel < acc:
                        failed_test = idx
                        break
            break
    last = ex.stderr.rstrip().splitlines()[-1] if ex.stderr.strip() else ""
    if verdict is Verdict.RUNTIME_ERROR and last.startswith("AssertionError"):
        verdict = Verdict.WRONG_ANSWER
        details = "Test failed" + (f": {line_text}" if line_text else ".") + "\n" + _tail(ex.stderr, 8)
    return Judgement(
        verdict,
        details,
        failed_test=failed_test,
        tests_run=n,
        tests_passed=0,
        wall_s=ex.wall_s,
        stderr=_tail(ex.stderr),
        returncode=ex.returncode,
    )


@dataclass(frozen=True)
class StdioJob:
    """A :func:`judge_stdio` call, for :func:`judge_many`."""

    code: str
    tests: Sequence[tuple[str, str]]
    limits: Limits = field(default_factory=Limits)
    stop_at_first_failure: bool = True

    def run(self) -> Judgement:
        return judge_stdio(self.code, self.tests, self.limits, self.stop_at_first_failure)


@dataclass(frozen=True)
class AssertJob:
    """A :func:`judge_asserts` call, for :func:`judge_many`."""

    code: str
    tests: str | Sequence[str]
    limits: Limits = field(default_factory=Limits)
    setup: str = ""
    entry_point: str | None = None

    def run(self) -> Judgement:
        return judge_asserts(
            self.code, self.tests, self.limits, setup=self.setup, entry_point=self.entry_point
        )


def judge_many(
    jobs: Iterable[StdioJob | AssertJob], workers: int | None = None
) -> list[Judgement]:
    """Judge many programs concurrently; results in the order of ``jobs``.

    A thread pool of ``workers`` (default: the number of cores) suffices: each
    run is its own process tree, the threads only wait on pipes.
    """
    jobs = list(jobs)
    if not jobs:
        return []
    isolation()  # probe once, before the threads start
    workers = max(1, min(workers or os.cpu_count() or 1, len(jobs)))
    with ThreadPoolExecutor(max_workers=workers, thread_name_prefix="sandbox") as pool:
        return list(pool.map(lambda job: job.run(), jobs))
