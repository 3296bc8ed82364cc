"""The sandbox's fork server, from the judge's side: start it, send it requests, stop it.

The server (inside/leafe_zygote.py) is a warm interpreter that forks one sandboxed child
per request; starting a fresh interpreter per program would cost more than the program
(see the module docstring of leafe_recipe.sandbox). One server per judging process is
started on first use (see probe.py) and stopped when the process exits or the socket
closes. Requests carry no program, input or test: only limits, a uid, namespaces and
file descriptors, passed over a Unix socket.
"""

from __future__ import annotations

import json
import os
import shutil
import socket
import subprocess
import sys
import tempfile
import threading
from dataclasses import dataclass
from pathlib import Path

from .model import SandboxError

INSIDE = Path(__file__).with_name("inside")
SAFE_PATH = "/usr/local/bin:/usr/bin:/bin"
_START_TIMEOUT_S = 60.0


@dataclass(frozen=True)
class Plan:
    """How children are isolated (chosen by the probe, then fixed for the process).

    ``identity``: "uid" (a dedicated uid per child; root callers), "userns" (the caller's
    uid without capabilities, in a user namespace) or "caller" (no change);
    ``view``: the private file-system view; ``net``, ``pid``: a network and a PID
    namespace per child; ``nproc``: apply RLIMIT_NPROC (meaningful per uid or user
    namespace only)."""

    identity: str
    view: bool
    net: bool
    pid: bool
    nproc: bool


def clean_env(workdir: str) -> dict[str, str]:
    """Environment built from scratch: nothing of the caller's leaks in."""
    return {
        "PATH": SAFE_PATH,
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


def python_candidates() -> list[str]:
    """Interpreters for the server, best first: $LEAFE_SANDBOX_PYTHON alone if set; else
    python3 on the standard PATH (the system's, whose directories the view holds anyway),
    then the caller's base interpreter (a virtual environment's link resolved, so that none
    of its packages is visible; its prefix is then bound into the view too)."""
    env = os.environ.get("LEAFE_SANDBOX_PYTHON")
    if env:
        return [env]
    found = []
    for name in ("python3", "python"):
        path = shutil.which(name, path=SAFE_PATH)
        if path:
            found.append(os.path.realpath(path))
    found.append(os.path.realpath(sys.executable))
    return list(dict.fromkeys(p for p in found if p))


class ServerGone(SandboxError):
    """The fork server exited (killed, say): the run was not started; a new server can be."""


class Server:
    """A running fork server: `hello` is what it reported after setting itself up."""

    def __init__(self, python: str, view: bool, userns: bool) -> None:
        self.python = python
        self._lock = threading.Lock()
        ours, theirs = socket.socketpair(socket.AF_UNIX, socket.SOCK_SEQPACKET)
        config = json.dumps({"socket": theirs.fileno(), "view": view, "userns": userns})
        self._log = tempfile.TemporaryFile()
        try:
            self._proc = subprocess.Popen(
                [python, "-s", "-B", str(INSIDE / "leafe_zygote.py"), config],
                stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=self._log,
                pass_fds=(theirs.fileno(),), env=clean_env("/"), cwd="/", start_new_session=True,
            )  # fmt: skip
        except OSError as exc:
            raise SandboxError(f"cannot start the sandbox's fork server with {python}: {exc}") from exc
        finally:
            theirs.close()
        self._sock, self._gone = ours, False
        self.hello = self._await_hello()

    def _await_hello(self) -> dict:
        self._sock.settimeout(_START_TIMEOUT_S)
        try:
            message = self._sock.recv(1 << 16)
        except OSError as exc:  # a timeout too
            message, error = b"", exc
        else:
            error = None
        self._sock.settimeout(None)
        if not message:
            self.close()
            self._log.seek(0)
            log = self._log.read().decode("utf-8", "replace")[-2000:]
            raise SandboxError(f"the sandbox's fork server ({self.python}) did not start ({error or 'it exited'}): {log}")
        return json.loads(message)

    def alive(self) -> bool:
        return not self._gone and self._proc.poll() is None

    def mark_gone(self) -> None:
        """A request was lost: treat the server as dead (the next run starts a new one)."""
        self._gone = True

    def send(self, request: dict, fds: list[int]) -> None:
        """Ask for one child; the fds are passed along (and stay open here)."""
        with self._lock:
            try:
                socket.send_fds(self._sock, [json.dumps(request).encode()], fds)
            except OSError as exc:
                self._gone = True
                raise ServerGone(f"the sandbox's fork server is gone ({exc})") from exc

    def close(self) -> None:
        self._sock.close()  # the server exits on end of file
        try:
            self._proc.wait(timeout=5)
        except subprocess.TimeoutExpired:
            self._proc.kill()
            self._proc.wait()
        self._log.close()
