"""Dedicated uids for sandboxed processes (one per concurrent process, locked across the
machine's processes), and finding and killing what runs under them."""

from __future__ import annotations

import fcntl
import logging
import os
import pwd
import signal
import tempfile
import threading
import time

from .model import SandboxError

log = logging.getLogger(__name__)

UID_BASE = int(os.environ.get("LEAFE_SANDBOX_UID_BASE", "61000"))
UID_COUNT = int(os.environ.get("LEAFE_SANDBOX_UID_COUNT", "128"))


def sandbox_uids() -> range:
    """The uids the sandbox may run programs as (when the caller is root).

    Default 61000-61127, below systemd's DynamicUser range (61184-65519); override with
    LEAFE_SANDBOX_UID_BASE / LEAFE_SANDBOX_UID_COUNT. Uids that exist in the user database
    are skipped. Each uid is held by one sandboxed process at a time (an flock shared by all
    processes on the machine), which is what makes RLIMIT_NPROC (a per-uid count) per-run
    and killing "every process of the uid" safe.
    """
    return range(UID_BASE, UID_BASE + UID_COUNT)


class UidPool:
    """The uids this process holds; `acquire` blocks while every uid is busy."""

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
                raise SandboxError(f"uid lock directory {d} is not private to us; remove it or fix its owner and mode 0700")
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
            if live_pids(uids={uid}):  # leftovers of a crashed run
                log.warning("sandbox uid %d had leftover processes; killing them", uid)
                kill_uid(uid)
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

    def held(self) -> set[int]:
        """The uids this process has claimed (other processes on the machine hold the rest)."""
        with self._lock:
            return set(self._held)


pool = UidPool()


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


def live_pids(*, uids: set[int] | None = None, sid: int | None = None) -> list[int]:
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
    """Pids (host view) of running processes under the sandbox uids this process has
    claimed (root mode; other processes' runs on the machine are theirs).

    Zombies are not counted: they run nothing. Used by the tests to check that nothing is
    left running after a run.
    """
    return live_pids(uids=pool.held())


def kill_uid(uid: int, timeout: float = 5.0) -> None:
    """SIGKILL every process of ``uid``, and wait until none is running.

    A forked helper becomes ``uid`` and calls ``kill(-1, SIGKILL)``, which the kernel
    delivers to every process of that uid in one pass, forks in flight included; the /proc
    scan then waits for them to die (and repeats the kill if something survived).
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
        if not live_pids(uids={uid}):
            return
        if time.monotonic() > deadline:
            log.error("processes of sandbox uid %d survive SIGKILL", uid)
            return
        time.sleep(delay)
        delay = min(delay * 2, 0.05)


def kill_session(sid: int, timeout: float = 5.0) -> None:
    """SIGKILL the process group and every process of session ``sid``."""
    deadline = time.monotonic() + timeout
    while True:
        try:
            os.killpg(sid, signal.SIGKILL)
        except OSError:
            pass
        pids = live_pids(sid=sid)
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
