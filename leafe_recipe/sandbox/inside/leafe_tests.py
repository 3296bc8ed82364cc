"""The tests' process in an assert judgement: run the task's setup and tests against the
submission, across the boundary, and report the verdict to the judge.

This process belongs to the judge: no code of the submission runs in it. The tests'
namespace holds the builtins, what the task's setup defines (HumanEval's prompt with its
helpers, MBPP's setup code), run after the submission, and for each name the tests use
that neither defines, what the submission holds under it: plain data as a value, a module
re-imported here by its name, anything else as a handle whose every use is a request to
the submission's process (leafe_wire). A submission never supplies a builtin or a name the
setup defines, except the names the judge says it provides (the entry point; an MBPP
function under test that is named like a builtin).

An exception the submission raises while answering a request fails the test that made the
request, whatever the test's own expression then does with it (a `map` that stops at a
StopIteration, an `except` clause). The verdict is one JSON object written on the report
pipe, which only this process holds.
"""

import ast
import builtins
import importlib
import json
import linecache
import os
import symtable
import sys
import time
import traceback

import leafe_wire

SETUP, TESTS = "setup.py", "tests.py"
_OWN_FILES = ("leafe_tests.py", "leafe_wire.py")
_STOP = object()
_IMPORT_SIDE_EFFECTS = frozenset({"antigravity", "this", "__main__"})  # a browser, a poem, a command line
_session = None


class CandidateError(Exception):
    """The submission raised, or its process ended, while answering a request of the tests."""


class Remote:
    """A handle to an object in the submission's process. Calling it, iterating it, reading
    or setting its attributes are requests answered with data; it equals only itself, and
    has no truth value (the submission would decide it)."""

    __slots__ = ("_hid", "_type")

    def __init__(self, hid, type_name):
        object.__setattr__(self, "_hid", hid)
        object.__setattr__(self, "_type", type_name)

    def __call__(self, *args, **kwargs):
        return _session.call(self, args, kwargs)

    def __getattr__(self, name):
        if name.startswith("__") and name.endswith("__"):
            raise AttributeError(name)
        return _session.request(("getattr", self, name))[0]

    def __setattr__(self, name, value):
        _session.request(("setattr", self, name, value))

    def __iter__(self):
        iterator = _session.request(("iter", self))[0]
        while True:
            item = _session.request(("next", iterator))
            if item is _STOP:
                return
            yield item[0]

    def __eq__(self, other):
        return type(other) is Remote and other._hid == self._hid

    def __ne__(self, other):
        return not self == other

    def __hash__(self):
        return hash(("leafe-remote", self._hid))

    def __bool__(self):
        raise TypeError(
            "the submission returned a %s object: its truth value would be the submission's to decide, so the "
            "judge does not ask (only plain data has one)" % self._type
        )

    def __repr__(self):
        return "<%s object of the submission>" % self._type


def _handle_of(obj):
    if type(obj) is not Remote:
        raise leafe_wire.Unsendable(
            "the tests passed a %s to the submission: only plain data (None, bool, numbers, str, bytes and "
            "lists, tuples, dicts and sets of them) and the submission's own objects cross to it" % type(obj).__name__
        )
    return obj._hid, obj._type


class _Session:
    """The channel to the submission's process, and the first failure it caused."""

    def __init__(self, link):
        self.link, self.failure = link, None

    def request(self, message):
        """The (value, changed arguments) of an "ok" answer, or _STOP for an exhausted iterator."""
        _send(message)
        try:
            reply = self.link.receive()
        except (OSError, EOFError):
            reply = None
        except leafe_wire.WireError as exc:
            self.fail("The submission's process answered with a malformed message (%s)." % exc)
        if reply is None:
            self.fail("The submission's process ended during a request of the tests.", ended=True)
        if type(reply) is tuple and len(reply) == 3 and reply[0] == "ok" and type(reply[2]) is list:
            return reply[1], reply[2]
        if reply == ("stop",):
            return _STOP
        if type(reply) is tuple and len(reply) == 3 and reply[0] == "raised" and all(type(x) is str for x in reply[1:]):
            self.fail(_raised_message(reply[1], reply[2], "during a test"), exception=reply[1])
        self.fail("The submission's process answered out of protocol.")

    def call(self, fn, args, kwargs):
        value, changed = self.request(("call", fn, args, kwargs))
        for key, new in changed:  # what the call left in its (mutable) arguments
            old = args[key] if type(key) is int and 0 <= key < len(args) else kwargs.get(key) if type(key) is str else None
            if type(old) is type(new) and type(old) in (list, bytearray):
                old[:] = new
            elif type(old) is type(new) and type(old) in (dict, set):
                old.clear()
                old.update(new)
        return value

    def fail(self, message, exception="", ended=False):
        """Record the first failure the submission caused, with the test that caused it, and
        raise CandidateError into that test."""
        if self.failure is None:
            stage, line = _where()
            verdict = "memory_limit" if exception == "MemoryError" else "runtime_error"
            self.failure = {"passed": False, "verdict": verdict, "stage": stage, "line": line,
                            "line_text": _line_text(stage, line), "message": message, "candidate_ended": ended}  # fmt: skip
        raise CandidateError(message)


def _raised_message(type_name, message, when):
    """What the submission raised, `when` ("before the tests ran", ...); an exit says so."""
    summary = type_name + (": " + message if message else "")
    if type_name in ("SystemExit", "KeyboardInterrupt"):
        return "The program exited before all the tests ran (%s)." % summary
    return "The submission raised %s %s." % (summary, when)


def _send(message):
    """Send a request; where the submission's process has gone, its last answer (the
    exception it ended with, say) may still wait in the pipe: the caller reads on."""
    try:
        _session.link.send(message)
    except BrokenPipeError:
        pass


def _where():
    """(file, line) of the innermost frame of the setup or the tests on the current stack."""
    frame = sys._getframe(1)
    while frame is not None:
        if frame.f_code.co_filename in (SETUP, TESTS):
            return frame.f_code.co_filename, frame.f_lineno
        frame = frame.f_back
    return None, None


def _line_text(filename, line):
    return linecache.getline(filename, line).strip() if filename and line else ""


def main(payload, call_fd, reply_fd, report_fd, max_bytes, candidate_pid):
    """Run the tests and write the report; `candidate_pid` is the submission's process, this
    one's child, whose exit status the report gives where it ended early."""
    global _session
    _session = _Session(leafe_wire.Link(reply_fd, call_fd, _handle_of, Remote, max_bytes))
    try:
        report = _run(json.loads(payload))
    except BaseException as exc:  # this process's own failure (memory, say)
        summary = "".join(traceback.format_exception_only(type(exc), exc)).strip()
        report = {"passed": False, "verdict": "memory_limit" if isinstance(exc, MemoryError) else "runtime_error",
                  "stage": None, "line": None, "message": "The judge's test process failed: " + summary}  # fmt: skip
    if report.get("candidate_ended"):
        report["candidate"] = _exit_of(candidate_pid)
    data = json.dumps(report).encode()
    while data:
        data = data[os.write(report_fd, data):]
    os.close(report_fd)
    sys.stdout.flush()
    return 0


def _exit_of(pid, wait_s=1.0):
    """The wait status and CPU time of the submission's process once it is gone (None if it
    is still running after `wait_s`: it closed its end of the channel and went on)."""
    deadline = time.monotonic() + wait_s
    while True:
        try:
            got, status, usage = os.wait4(pid, os.WNOHANG)
        except ChildProcessError:
            return None
        if got == pid:
            return {"status": status, "cpu_s": usage.ru_utime + usage.ru_stime}
        if time.monotonic() > deadline:
            return None
        time.sleep(0.002)


def _run(payload):
    setup, tests = payload["setup"], payload["tests"]
    provided = list(payload["provides"])
    for name, text in ((SETUP, setup), (TESTS, tests)):
        linecache.cache[name] = (len(text), None, text.splitlines(True), name)
    try:
        setup_code = compile(setup, SETUP, "exec", dont_inherit=True)
        tests_code = compile(tests, TESTS, "exec", dont_inherit=True)
    except SyntaxError as exc:  # the task's own code
        return _test_failure(exc)
    wanted = _wanted_names(setup, tests, provided)
    values, failure = _submission_names(wanted)
    if failure is not None:
        return failure
    namespace = {"__name__": "__main__", "__builtins__": builtins}
    try:
        _bind(namespace, values, wanted)
        exec(setup_code, namespace)
        _bind(namespace, values, provided)  # the submission's own, over the task's stub
        exec(tests_code, namespace)
    except BaseException as exc:  # SystemExit too: the tests did not all run
        return _session.failure or _test_failure(exc)
    return _session.failure or {"passed": True}


def _submission_names(wanted):
    """What the submission holds under the names the tests want: its answer to the first
    request, which it reads once its code has run. (values, None), or (None, the failure
    report) where its code raised or its process ended."""
    _send(("names", wanted))
    try:
        reply = _session.link.receive()
    except (OSError, EOFError, leafe_wire.WireError):
        reply = None
    report = {"passed": False, "verdict": "runtime_error", "stage": "submission", "line": None,
              "message": "The submission's process ended before the tests ran.", "candidate_ended": True}  # fmt: skip
    if type(reply) is tuple and len(reply) == 3 and reply[0] == "ok":
        if _well_formed(reply[1], wanted):
            return reply[1], None
        report.update(candidate_ended=False, message="The submission's process described its names out of protocol.")
    elif type(reply) is tuple and len(reply) == 3 and reply[0] == "raised" and all(type(x) is str for x in reply[1:]):
        report.update(candidate_ended=False, message=_raised_message(reply[1], reply[2], "before the tests ran"))
        report["verdict"] = "memory_limit" if reply[1] == "MemoryError" else "runtime_error"
    return None, report


def _wanted_names(setup, tests, provided):
    """The names to ask the submission for: those the setup and tests use but neither binds
    at the top level and that are not builtins, and the provided ones."""
    used, bound = set(), set()
    for source in (setup, tests):
        used.update(node.id for node in ast.walk(ast.parse(source)) if isinstance(node, ast.Name))
        table = symtable.symtable(source, "names", "exec")
        bound.update(s.get_name() for s in table.get_symbols() if s.is_assigned() or s.is_imported())
    return sorted((used - bound - set(vars(builtins))) | set(provided))


def _well_formed(values, wanted):
    ok = type(values) is dict and set(values) <= set(wanted)
    ok = ok and all(type(v) is tuple and v and v[0] in ("value", "module", "missing") for v in values.values())
    return ok and all(len(v) == 2 and type(v[1]) is str for v in values.values() if v[0] == "module")


def _bind(namespace, values, names):
    """Put what the submission holds under `names` in the tests' namespace: values as they
    came, modules imported here by name (standard-library ones only: importing runs a
    module's code in this process), nothing for the rest."""
    for name in names:
        described = values.get(name, ("missing",))
        if described[0] == "value":
            namespace[name] = described[1]
            continue
        module = None
        parts = described[1].split(".") if described[0] == "module" else [None]
        if parts[0] in getattr(sys, "stdlib_module_names", ()) and not _IMPORT_SIDE_EFFECTS & set(parts):
            try:
                module = importlib.import_module(described[1])
            except Exception:  # not a module here: the name stays unbound
                pass
        if module is None:
            namespace.pop(name, None)
        else:
            namespace[name] = module


def _test_failure(exc):
    """The report for an exception raised by the setup or the tests themselves."""
    stage = line = None
    tb = exc.__traceback__
    while tb is not None:
        if tb.tb_frame.f_code.co_filename in (SETUP, TESTS):
            stage, line = tb.tb_frame.f_code.co_filename, tb.tb_lineno
        tb = tb.tb_next
    if isinstance(exc, SyntaxError) and exc.filename in (SETUP, TESTS):
        stage, line = exc.filename, exc.lineno
    frames = [f for f in traceback.extract_tb(exc.__traceback__) if os.path.basename(f.filename) not in _OWN_FILES]
    frames = frames[next((i for i, f in enumerate(frames) if f.filename in (SETUP, TESTS)), len(frames)):]
    summary = "".join(traceback.format_exception_only(type(exc), exc))
    text = "".join(["Traceback (most recent call last):\n"] + traceback.format_list(frames) if frames else []) + summary
    verdict = "wrong_answer" if isinstance(exc, AssertionError) else "runtime_error"
    if isinstance(exc, MemoryError):
        verdict = "memory_limit"
    return {"passed": False, "verdict": verdict, "stage": stage, "line": line, "line_text": _line_text(stage, line),
            "message": summary.strip().splitlines()[-1], "traceback": text}  # fmt: skip
