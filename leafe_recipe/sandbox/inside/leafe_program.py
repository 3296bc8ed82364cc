"""A stdin/stdout program, run in a sandboxed child the way `python main.py` runs it.

The child is a fork of the sandbox's warm interpreter, so the program gets a fresh
`__main__` module, `sys.argv == ["main.py"]`, its working directory first on `sys.path`,
and the interpreter's exit: its `SystemExit` status (a message is printed, status 1),
non-daemon threads joined, `atexit` handlers run, output flushed (status 120 if that
fails), in that order, as `Py_FinalizeEx` does; the rest of the interpreter's teardown,
which costs more than most programs, is skipped. An uncaught exception prints the
traceback from the program's first frame (not the sandbox's) and exits with status 1.
"""

import atexit
import builtins
import os
import sys
import threading
import traceback
import types

PROGRAM = "main.py"


def print_exception(exc, first_file):
    """The traceback as the interpreter prints it, from the first frame in `first_file` on."""
    tb = exc.__traceback__
    while tb is not None and tb.tb_frame.f_code.co_filename != first_file:
        tb = tb.tb_next
    lines = traceback.format_exception(type(exc), exc, tb)
    if tb is None:  # raised before any frame of the file ran (a SyntaxError, say)
        lines = traceback.format_exception_only(type(exc), exc)
    sys.stderr.write("".join(lines))
    sys.stderr.flush()


def fresh_main_module():
    module = types.ModuleType("__main__")
    module.__dict__["__builtins__"] = builtins
    sys.modules["__main__"] = module
    return module


def main(code, workdir):
    """Run the program; never returns."""
    module = fresh_main_module()
    sys.argv[:] = [PROGRAM]
    sys.path[0] = workdir
    try:
        exec(compile(code, PROGRAM, "exec", dont_inherit=True), module.__dict__)
        status = 0
    except SystemExit as exc:
        status = _exit_status(exc)
    except BaseException as exc:  # KeyboardInterrupt too, as Python reports it
        print_exception(exc, PROGRAM)
        status = 1
    exit_now(status)


def _exit_status(exc):
    code = exc.code
    if code is None:
        return 0
    if isinstance(code, int):
        return code & 0xFF
    sys.stderr.write("%s\n" % (code,))
    return 1


def exit_now(status):
    """Leave as the interpreter would, without its teardown."""
    threading._shutdown()  # joins the non-daemon threads
    atexit._run_exitfuncs()
    for stream in (sys.stdout, sys.stderr):
        try:
            stream.flush()
        except Exception:  # Python exits with 120 when it cannot flush
            status = 120
    os._exit(status)
