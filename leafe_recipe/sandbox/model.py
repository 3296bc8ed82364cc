"""The sandbox's vocabulary: the limits of a run, what a run gives back, verdicts, and the
isolation in force."""

from __future__ import annotations

import enum
from dataclasses import dataclass


class SandboxError(RuntimeError):
    """The sandbox itself failed (not the program): setup, launch or cleanup."""


@dataclass(frozen=True)
class Limits:
    """Resource limits for one program run (each process of an assert judgement gets them).

    ``cpu_s`` is enforced per process by RLIMIT_CPU (rounded up to whole seconds; SIGKILL
    at the limit); ``wall_s`` by the parent, which kills the whole run at the deadline (it
    catches sleeping or blocked programs that use no CPU). ``memory_mb`` is RLIMIT_AS
    (virtual address space, per process): allocations beyond it fail, which Python reports
    as ``MemoryError``. ``output_bytes`` caps stdout and stderr each (the parent stops
    reading and kills the run) and, as RLIMIT_FSIZE, every file the program writes.
    ``disk_mb`` is the size of the working directory's file system (a tmpfs), so it bounds
    everything the program writes in total. ``nproc`` is RLIMIT_NPROC (processes and
    threads of the run's uid) and ``nofile`` RLIMIT_NOFILE.
    """

    cpu_s: float = 10.0
    wall_s: float = 20.0
    memory_mb: int = 2048
    output_bytes: int = 8 * 1024 * 1024
    nproc: int = 64
    nofile: int = 64
    disk_mb: int = 32

    def __post_init__(self) -> None:
        for name in ("cpu_s", "wall_s", "memory_mb", "output_bytes", "nproc", "nofile", "disk_mb"):
            if getattr(self, name) <= 0:
                raise ValueError(f"Limits.{name} must be positive, got {getattr(self, name)!r}")


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
    """Which isolation mechanisms are in force, as observed by a probe program.

    ``uid``: the dedicated uid programs run as (one per concurrent process, from
    :func:`sandbox_uids`); ``user_namespace``: the non-root way to get namespaces (the
    programs then act with the caller's uid on the host, with no capability); ``network``,
    ``readonly_fs``, ``private_proc``, ``private_root``: what the probe program observed
    (connect fails with ENETUNREACH; nothing outside its working directory is writable; it
    is pid 1 and sees only itself in /proc; the project, the home directory and the
    caller's working directory do not exist for it: it sees only the interpreter's
    directories, read-only, and an empty working directory on a size-capped tmpfs);
    ``python``: the interpreter (the fork server's).

    Fallbacks where a mechanism is not permitted:

    * ``uid is None``: programs run as the caller's uid (the caller is not root: a root
      caller that cannot drop to a dedicated uid is refused with :class:`SandboxError`
      unless LEAFE_SANDBOX_ALLOW_ROOT=1). In a user namespace they hold no capability;
      RLIMIT_NPROC counts every concurrent run's processes together (Linux >= 5.14, else
      it is not applied), and no private /proc can be mounted there.
    * ``network`` False: no network namespace; the program can open sockets.
    * ``private_root`` False: no mount namespace; the program reads every world-readable
      file of the machine, and only single files are capped, not their total; with a
      dedicated uid it can still write world-writable directories such as /tmp.
    * ``pid_namespace`` False: the supervisor, a child subreaper to which every orphan of
      the program re-parents, kills what is left when the program exits (or at the
      deadline), with a dedicated uid first by a helper that becomes that uid and calls
      ``kill(-1, SIGKILL)``, then by scanning /proc for its children (with the private
      view there is no /proc to scan: only the dedicated uid's kill finds them). Without a
      dedicated uid nor PID namespace the program can kill the supervisor (same uid) and a
      daemon that calls ``setsid`` escapes: do not run untrusted code in that mode.
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
    private_root: bool = False

    @property
    def complete(self) -> bool:
        """True when every mechanism is in force (root with namespaces)."""
        return (
            self.uid is not None
            and self.network
            and self.readonly_fs
            and self.pid_namespace
            and self.private_proc
            and self.private_root
        )


@dataclass
class Execution:
    """Raw result of one program run (see :func:`run_program`).

    ``returncode`` is the program's exit status (negative: killed by that signal), ``None``
    only if the sandbox could not learn it. ``stderr`` is the same from run to run for the
    same program (no temporary paths in it), as replay needs.
    """

    stdout: str
    stderr: str
    returncode: int | None
    wall_s: float
    cpu_s: float
    timed_out: bool = False
    output_truncated: bool = False
    isolation: Isolation | None = None

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

    ``details`` is a human-readable explanation suitable as feedback to the model
    (truncated). ``failed_test`` is the 0-based index of the first failing test (for
    :func:`judge_asserts`: the index in the list of asserts, or the line of the tests
    text), ``None`` when passed or unknown. For wrong answers on stdio tests, ``input``,
    ``expected`` and ``actual`` hold the (truncated) texts; ``stderr`` is the tail of what
    the submission wrote on stderr (for an assert program: its tracebacks).
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
