"""The sandbox's fork server: a warm interpreter that forks one sandboxed child per request.

Started once per judging process by `leafe_recipe.sandbox` (as root when the caller is, in
a new user namespace otherwise) with the configuration as argv[1] and a socket on which
requests arrive. It first builds the file-system view (leafe_linux.build_view) and imports
what the children will need, then answers "hello" and serves. A request (JSON, with its
file descriptors passed along) names a role (a stdin/stdout program, or an assert
judgement: the tests' process and the submission's), the limits, the uids and the
namespaces. The server never receives a program, an input or a test: those reach each
child on its own descriptors, so the server's memory, which every child inherits, holds
nothing of any run.

For each request the server forks a supervisor, which enters the run's namespaces (mount
with its own size-capped working directory, PID, network), forks the run's first process,
reports its pid and at the end its wait status and CPU time on the status pipe, and kills
it when the judge asks (a byte on the control pipe) or dies (end of file there). That
process mounts the run's /proc; for an assert judgement it is the tests' process, which
forks the submission's process and then leaves the mount namespace where the submission
writes. Each takes its descriptors, sets its limits, drops to its uid (or, in a user
namespace, every capability), and returns from `serve` to run its role.
"""

import gc
import json
import os
import resource
import select
import signal
import socket
import sys
import time

import leafe_candidate
import leafe_linux
import leafe_program
import leafe_tests

# What programs and tests commonly import, loaded once here instead of in every child.
_WARM = ("math", "cmath", "re", "collections", "itertools", "functools", "heapq", "bisect", "string", "random",
         "typing", "fractions", "decimal", "datetime", "statistics", "operator", "copy", "json", "hashlib",
         "array", "threading", "io", "struct", "ast", "symtable", "importlib", "linecache", "traceback")  # fmt: skip


def main():
    config = json.loads(sys.argv[1])
    sock = socket.socket(fileno=config["socket"])
    os.umask(0o022)
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    resource.setrlimit(resource.RLIMIT_NOFILE, (min(soft, 4096), hard))  # keeps closing a child's descriptors cheap
    hello = _set_up(config)
    for name in _WARM:
        __import__(name)
    sock.send(json.dumps(hello).encode())
    gc.collect()
    gc.freeze()  # children do not copy the server's objects when they collect
    job = serve(sock, hello["view"], config["userns"])  # returns only in a sandboxed child
    _run(job)


def _set_up(config):
    """The server's own isolation: a user namespace if asked, then the file-system view."""
    notes, view = [], config["view"]
    if config["userns"]:
        leafe_linux.enter_user_namespace()
    if view:
        try:
            leafe_linux.unshare(leafe_linux.CLONE_NEWNS)
            leafe_linux.build_view(_interpreter_dirs())
        except OSError as exc:
            notes.append("no private file-system view (%s)" % exc)
            view = False
    version = "%d.%d.%d" % sys.version_info[:3]
    return {"ok": True, "view": view, "notes": notes, "python_version": version, "pid": os.getpid()}


def _interpreter_dirs():
    """The interpreter's prefix when it lies outside the system directories (a pyenv, say)."""
    system = [os.path.realpath(d) for d in leafe_linux.SYSTEM_DIRS if os.path.exists(d)]
    dirs = []
    for path in {sys.base_prefix, sys.prefix, os.path.dirname(os.path.dirname(os.path.realpath(sys.executable)))}:
        real = os.path.realpath(path)
        if not any(real == s or real.startswith(s + "/") for s in system):
            dirs.append(real)
    return sorted(dirs)


class Job:
    """What a sandboxed child runs: its role, its descriptors by name, the request (and, for
    the tests' process, the pid of the submission's)."""

    def __init__(self, role, fds, request):
        self.role, self.fds, self.request, self.candidate_pid = role, fds, request, None


def serve(sock, view, userns):
    """Fork a supervised child per request; return a Job in the child, exit when the judge's
    process closes the socket."""
    signal.signal(signal.SIGCHLD, signal.SIG_IGN)  # the supervisors are reaped by the kernel
    while True:
        try:
            message, fds, _, _ = socket.recv_fds(sock, 1 << 16, 32)
        except InterruptedError:
            continue
        if not message:
            os._exit(0)
        request = json.loads(message)
        if os.fork() == 0:
            sock.close()
            return _supervise(request, dict(zip(request["fds"], fds)), view, userns)
        for fd in fds:
            os.close(fd)


def _supervise(request, fds, view, userns):
    """In the supervisor: enter the run's namespaces, fork the run's first process, return
    its Job there, and here wait for it (never returns)."""
    signal.signal(signal.SIGCHLD, signal.SIG_DFL)
    status = fds["status"]
    try:
        owner = request["candidate_uid"] if request["role"] == "asserts" else request["uid"]
        disk = request["limits"]["disk_mb"] << 20
        leafe_linux.enter_run_namespaces(request["net"], request["pid"], view, disk, 0 if owner is None else owner)
        if not request["pid"]:
            leafe_linux.prctl(leafe_linux.PR_SET_CHILD_SUBREAPER, 1)
        child = os.fork()
    except OSError as exc:
        os.write(status, ("E %s\n" % exc).encode())
        os._exit(1)
    if child == 0:
        return _first_process(request, fds, view, userns)
    os.write(status, b"P %d\n" % child)
    _close_all_but([fds["control"], status])  # so that the judge sees end of file when the run is gone
    _wait(child, fds["control"], status, request)
    os._exit(0)


def _first_process(request, fds, view, userns):
    """The run's first process (the init of its PID namespace): the program; or, for an
    assert judgement, the tests' process, which first forks the submission's process and
    then leaves its mount namespace (so that nothing the submission writes is visible to
    the tests)."""
    try:
        if request["pid"] and view:
            try:
                leafe_linux.mount_private_proc()
            except OSError:
                pass  # recorded by the probe as private_proc = False
        std = {"stdin": fds["stdin"], "status": fds["status"]}
        if request["role"] == "program":
            own = dict(std, stdout=fds["stdout"], stderr=fds["stderr"], payload=fds["payload"])
            return _become("program", own, request, request["uid"], request["workdir"], userns)
        call_r, call_w = os.pipe()
        reply_r, reply_w = os.pipe()
        candidate = os.fork()
        if candidate == 0:
            own = dict(std, stdout=fds["candidate_stdout"], stderr=fds["candidate_stderr"],
                       payload=fds["candidate_payload"], call=call_r, reply=reply_w)  # fmt: skip
            return _become("candidate", own, request, request["candidate_uid"], request["workdir"], userns)
        if view:
            leafe_linux.unshare(leafe_linux.CLONE_NEWNS)
            leafe_linux.unmount(leafe_linux.WORKDIR)
            try:
                leafe_linux.unmount("/proc")
            except OSError:
                pass  # none was mounted
        own = dict(std, stdout=fds["stdout"], stderr=fds["stderr"], payload=fds["payload"], report=fds["report"],
                   call=call_w, reply=reply_r)  # fmt: skip
        job = _become("tests", own, request, request["uid"], "/", userns)
        job.candidate_pid = candidate
        return job
    except OSError as exc:
        os.write(fds["status"], ("E %s\n" % exc).encode())
        os._exit(127)


def _become(role, own, request, uid, workdir, userns):
    """Keep only the descriptors `own` (stdin, stdout, stderr on 0, 1, 2), then set the
    limits and drop to `uid`; the status pipe is kept until the end, to report a failure."""
    os.setsid()  # its own session: kill(0, ...) must not reach the supervisor
    for target, name in enumerate(("stdin", "stdout", "stderr")):
        os.dup2(own[name], target)
    _close_all_but([0, 1, 2] + [fd for name, fd in own.items() if name not in ("stdin", "stdout", "stderr")])
    os.chdir(workdir)
    leafe_linux.apply_limits(request["limits"], request["nproc"])
    leafe_linux.drop_identity(uid, userns)
    leafe_linux.prctl(leafe_linux.PR_SET_PDEATHSIG, signal.SIGKILL)  # after the uid changed, which clears it
    leafe_linux.prctl(leafe_linux.PR_SET_DUMPABLE, 0 if role == "tests" else 1)
    os.environ.clear()
    os.environ.update(request["env"])
    leafe_linux.limit_memory(request["limits"])
    os.close(own.pop("status"))
    return Job(role, own, request)


def _close_all_but(keep):
    low = 0
    for fd in sorted(set(keep)) + [resource.getrlimit(resource.RLIMIT_NOFILE)[0]]:
        if low < fd:  # closerange(n, n) would close every descriptor (close_range(n, n - 1) wraps)
            os.closerange(low, fd)
        low = fd + 1


def _wait(child, control, status, request):
    """Wait for the child (killing it when asked or when the judge dies), clean up what it
    left behind, report its wait status and the CPU time of the whole run."""
    try:
        pidfd = os.pidfd_open(child)
    except (AttributeError, OSError):
        pidfd = None
    poller = select.poll()
    poller.register(control, select.POLLIN)
    if pidfd is not None:
        poller.register(pidfd, select.POLLIN)
    killed = False
    while True:
        events = poller.poll(None if pidfd is not None else 10)
        if not killed and any(fd == control for fd, _ in events):
            os.kill(child, signal.SIGKILL)
            killed = True
            poller.unregister(control)
        pid, wait_status, _ = os.wait4(child, os.WNOHANG)
        if pid == child:
            break
    if not request["pid"]:
        _kill_subtree([request["uid"], request.get("candidate_uid")], time.monotonic() + 10.0)
    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    os.write(status, b"X %d %.6f\n" % (wait_status, usage.ru_utime + usage.ru_stime))


def _kill_subtree(uids, deadline):
    """Without a PID namespace: kill and reap every descendant (they re-parent to this
    subreaper). A helper that becomes each of the run's uids first kills all its processes at once;
    then the running children are killed until none is left, and only then reaped (a zombie
    keeps its RLIMIT_NPROC slot, so a fork bomb cannot refill the slots meanwhile)."""
    for uid in uids:
        if uid is None:
            continue
        helper = os.fork()
        if helper == 0:
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
        kids = _live_children(os.getpid())
        if not kids:
            break
        for kid in kids:
            try:
                os.kill(kid, signal.SIGKILL)
            except OSError:
                pass
        time.sleep(delay)
        delay = min(delay * 2, 0.01)
    while time.monotonic() < deadline:
        try:
            if os.waitpid(-1, os.WNOHANG)[0] == 0:
                time.sleep(0.001)
        except ChildProcessError:
            return


def _live_children(parent):
    kids = []
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            try:
                with open("/proc/%s/stat" % entry, "rb") as f:
                    fields = f.read().rsplit(b")", 1)[1].split()
            except (OSError, IndexError):
                continue
            if int(fields[1]) == parent and fields[0] not in (b"Z", b"X"):
                kids.append(int(entry))
    return kids


def _read_payload(fd):
    chunks, offset = [], 0
    while True:
        chunk = os.pread(fd, 1 << 20, offset)  # the judge's copy shares the file offset
        if not chunk:
            os.close(fd)
            return b"".join(chunks).decode("utf-8", "surrogateescape")
        chunks.append(chunk)
        offset += len(chunk)


def _run(job):
    """Run the child's role (never returns)."""
    payload, fds, request = _read_payload(job.fds["payload"]), job.fds, job.request
    if job.role == "program":
        leafe_program.main(payload, request["workdir"])
    if job.role == "candidate":
        leafe_program.exit_now(leafe_candidate.main(payload, fds["call"], fds["reply"], request["max_message"]))
    code = leafe_tests.main(payload, fds["call"], fds["reply"], fds["report"], request["max_message"], job.candidate_pid)
    leafe_program.exit_now(code)


if __name__ == "__main__":
    main()
