"""Linux isolation steps of the sandbox's fork server (ctypes; standard library only).

Runs inside the sandbox interpreter: `build_view` once in the fork server, the rest in
each sandboxed child before any untrusted code runs. Every step that the kernel refuses
raises OSError naming the step, so that the caller can fall back and say so.
"""

import ctypes
import os
import platform
import resource

CLONE_NEWNS, CLONE_NEWIPC, CLONE_NEWUSER = 0x00020000, 0x08000000, 0x10000000
CLONE_NEWPID, CLONE_NEWNET = 0x20000000, 0x40000000
MS_RDONLY, MS_NOSUID, MS_NODEV, MS_NOEXEC, MS_REMOUNT = 1, 2, 4, 8, 32
MS_BIND, MS_REC, MS_PRIVATE = 4096, 16384, 1 << 18
MNT_DETACH = 2
PR_SET_PDEATHSIG, PR_SET_DUMPABLE, PR_SET_SECUREBITS = 1, 4, 28
PR_SET_CHILD_SUBREAPER, PR_SET_NO_NEW_PRIVS = 36, 38
# SECBIT_NOROOT, _NO_SETUID_FIXUP, _KEEP_CAPS_LOCKED, _NO_CAP_AMBIENT_RAISE, each with its lock
_SECUREBITS_NO_ROOT = 0x01 | 0x02 | 0x04 | 0x08 | 0x20 | 0x40 | 0x80
_PIVOT_ROOT = {"x86_64": 155, "aarch64": 41, "riscv64": 41}
_MOUNT_SETATTR = 442  # the same number in every architecture's table
_AT_RECURSIVE, _MOUNT_ATTR_RDONLY, _MOUNT_ATTR_NOSUID, _MOUNT_ATTR_NODEV = 0x8000, 0x1, 0x2, 0x4

WORKDIR = "/work"
SYSTEM_DIRS = ("/usr", "/bin", "/sbin", "/lib", "/lib64", "/lib32", "/libx32")
SYSTEM_FILES = ("/etc/ld.so.cache",)
DEVICES = ("/dev/null", "/dev/zero", "/dev/full", "/dev/random", "/dev/urandom")

_libc = ctypes.CDLL(None, use_errno=True)
_libc.mount.argtypes = [ctypes.c_char_p, ctypes.c_char_p, ctypes.c_char_p, ctypes.c_ulong, ctypes.c_char_p]
_libc.umount2.argtypes = [ctypes.c_char_p, ctypes.c_int]
_libc.unshare.argtypes = [ctypes.c_int]
_libc.prctl.argtypes = [ctypes.c_int, ctypes.c_ulong, ctypes.c_ulong, ctypes.c_ulong, ctypes.c_ulong]


class _MountAttr(ctypes.Structure):
    _fields_ = [("attr_set", ctypes.c_uint64), ("attr_clr", ctypes.c_uint64),
                ("propagation", ctypes.c_uint64), ("userns_fd", ctypes.c_uint64)]  # fmt: skip


class _CapHeader(ctypes.Structure):
    _fields_ = [("version", ctypes.c_uint32), ("pid", ctypes.c_int)]


class _CapData(ctypes.Structure):
    _fields_ = [("effective", ctypes.c_uint32), ("permitted", ctypes.c_uint32), ("inheritable", ctypes.c_uint32)]


def _check(ret, what):
    if ret != 0:
        err = ctypes.get_errno()
        raise OSError(err, "%s: %s" % (what, os.strerror(err)))


def _b(text):
    return None if text is None else os.fsencode(text)


def mount(source, target, fstype, flags, data=None):
    _check(_libc.mount(_b(source), _b(target), _b(fstype), flags, _b(data)), "mount %s" % target)


def unmount(target):
    _check(_libc.umount2(_b(target), MNT_DETACH), "unmount %s" % target)


def unshare(flags):
    _check(_libc.unshare(flags), "unshare")


def prctl(option, value):
    _check(_libc.prctl(option, value, 0, 0, 0), "prctl %d" % option)


# --- the fork server's identity and file-system view ------------------------------------------


def enter_user_namespace():
    """Become root of a new user namespace mapped to the caller's uid and gid (the
    unprivileged way to get the other namespaces)."""
    uid, gid = os.geteuid(), os.getegid()
    unshare(CLONE_NEWUSER)
    for name, text in (("setgroups", "deny"), ("uid_map", "0 %d 1" % uid), ("gid_map", "0 %d 1" % gid)):
        with open("/proc/self/" + name, "w") as f:
            f.write(text)


def build_view(extra_dirs):
    """In this (new, private) mount namespace, make the root a small read-only tmpfs that holds
    only the system's program and library directories and `extra_dirs` (the interpreter's
    prefix), bound read-only, a few devices, and empty mount points for each run's /proc and
    working directory; the old root is detached, so nothing else is reachable."""
    mount(None, "/", None, MS_REC | MS_PRIVATE)
    staging = "/tmp"  # any directory: the new root covers it in this namespace only
    mount("tmpfs", staging, "tmpfs", MS_NOSUID | MS_NODEV, "size=1m,mode=755")
    for path in SYSTEM_DIRS + tuple(extra_dirs):
        _expose_dir(staging, path)
    os.makedirs(staging + "/dev", 0o755)
    for path in SYSTEM_FILES + DEVICES:
        _expose_file(staging, path, writable=path in DEVICES)
    for path in ("/proc", WORKDIR):
        os.makedirs(staging + path, 0o755)
    machine = platform.machine()
    if machine not in _PIVOT_ROOT:
        raise OSError(0, "pivot_root: no system call number known for %s" % machine)
    os.chdir(staging)
    _check(_libc.syscall(_PIVOT_ROOT[machine], b".", b"."), "pivot_root")
    unmount(".")  # the old root, stacked on the new one by pivot_root(".", ".")
    os.chdir("/")
    mount(None, "/", None, MS_REMOUNT | MS_RDONLY | MS_NOSUID | MS_NODEV)


def _expose_dir(staging, path):
    if not os.path.lexists(path):
        return
    target = staging + path
    if os.path.islink(path):
        os.makedirs(os.path.dirname(target), 0o755, exist_ok=True)
        if not os.path.lexists(target):
            os.symlink(os.readlink(path), target)
        return
    os.makedirs(target, 0o755, exist_ok=True)
    mount(path, target, None, MS_BIND | MS_REC)
    _read_only(target)


def _expose_file(staging, path, writable):
    if not os.path.exists(path):
        return
    target = staging + path
    os.makedirs(os.path.dirname(target), 0o755, exist_ok=True)
    open(target, "w").close()
    mount(path, target, None, MS_BIND)
    if not writable:
        mount(None, target, None, MS_REMOUNT | MS_BIND | MS_RDONLY | MS_NOSUID | MS_NODEV)


def _read_only(target):
    """Read-only, nosuid, nodev, submounts included (mount_setattr, Linux >= 5.12; else the top mount)."""
    attr = _MountAttr(_MOUNT_ATTR_RDONLY | _MOUNT_ATTR_NOSUID | _MOUNT_ATTR_NODEV, 0, 0, 0)
    fd_cwd = -100  # AT_FDCWD
    if _libc.syscall(_MOUNT_SETATTR, fd_cwd, _b(target), _AT_RECURSIVE, ctypes.byref(attr), ctypes.sizeof(attr)) != 0:
        mount(None, target, None, MS_REMOUNT | MS_BIND | MS_RDONLY | MS_NOSUID | MS_NODEV)


# --- each run ----------------------------------------------------------------------------


def enter_run_namespaces(net, pid, view, disk_bytes, owner):
    """The supervisor's step: new namespaces for this run, and (with the view) its own
    working directory, a tmpfs whose size bounds everything the run can write, and its own
    System V IPC objects and POSIX message queues (gone with the run, not left on the host)."""
    flags = (CLONE_NEWNS | CLONE_NEWIPC if view else 0) | (CLONE_NEWPID if pid else 0) | (CLONE_NEWNET if net else 0)
    if flags:
        unshare(flags)
    if view:
        options = "size=%d,nr_inodes=4096,mode=700,uid=%d,gid=%d" % (disk_bytes, owner, owner)
        mount("tmpfs", WORKDIR, "tmpfs", MS_NOSUID | MS_NODEV, options)


def mount_private_proc():
    """A /proc of the run's own PID namespace (refused where no other proc is visible, as in a
    user namespace whose mount namespace holds none: /proc then stays empty)."""
    mount("proc", "/proc", "proc", MS_NOSUID | MS_NODEV | MS_NOEXEC)


def apply_limits(limits, nproc):
    """Resource limits other than the address space (set last, see `limit_memory`); soft =
    hard, so RLIMIT_CPU kills with SIGKILL (the init of a PID namespace ignores SIGXCPU)."""
    cpu = max(1, int(-(-limits["cpu_s"] // 1)))
    pairs = [(resource.RLIMIT_CPU, cpu), (resource.RLIMIT_FSIZE, limits["output_bytes"]),
             (resource.RLIMIT_NOFILE, limits["nofile"]), (resource.RLIMIT_CORE, 0)]  # fmt: skip
    if nproc:
        pairs.append((resource.RLIMIT_NPROC, limits["nproc"]))
    for which, value in pairs:
        resource.setrlimit(which, (value, value))


def limit_memory(limits):
    mem = limits["memory_mb"] * 1024 * 1024
    resource.setrlimit(resource.RLIMIT_AS, (mem, mem))


def drop_identity(uid, user_namespace):
    """Become `uid` (which clears every capability), or, in a user namespace where no other
    uid is mapped, give up every capability for good; never gain privileges again."""
    if uid is not None:
        os.setgroups([])
        os.setgid(uid)
        os.setuid(uid)
    elif user_namespace:
        prctl(PR_SET_SECUREBITS, _SECUREBITS_NO_ROOT)
        header, data = _CapHeader(0x20080522, 0), (_CapData * 2)()  # _LINUX_CAPABILITY_VERSION_3
        _check(_libc.capset(ctypes.byref(header), ctypes.byref(data)), "capset")
    prctl(PR_SET_NO_NEW_PRIVS, 1)
