"""The submission's process in an assert judgement: run the submission, then answer the
tests' requests (describe a name, call, read or set an attribute, iterate).

Nothing here is trusted: the submission runs in this process and may change any of it.
What it can do is answer requests, and every answer is only data to the tests' process
(see leafe_wire). An exception raised while answering goes back as its type and message
(and its traceback, from the submission's first frame, is printed on stderr).
"""

import types

import leafe_program
import leafe_wire

SOLUTION = "solution.py"
_MUTABLE = (list, dict, set, bytearray)


class _Handles:
    """The objects handed to the tests' process, by handle id (kept alive for the run)."""

    def __init__(self):
        self.objects, self.ids = {}, {}

    def handle_of(self, obj):
        hid = self.ids.get(id(obj))
        if hid is None:
            hid = self.ids[id(obj)] = len(self.objects) + 1
            self.objects[hid] = obj
        return hid, type(obj).__name__

    def resolve(self, hid, type_name):
        if hid not in self.objects:
            raise leafe_wire.WireError("unknown handle %d" % hid)
        return self.objects[hid]


def main(code, call_fd, reply_fd, max_bytes):
    handles = _Handles()
    link = leafe_wire.Link(call_fd, reply_fd, handles.handle_of, handles.resolve, max_bytes)
    namespace = leafe_program.fresh_main_module().__dict__
    try:
        exec(compile(code, SOLUTION, "exec", dont_inherit=True), namespace)
    except BaseException as exc:  # SystemExit too: the tests cannot run
        _reply(link, _raised(exc))  # the answer to the tests' first request
        return 1
    while True:
        request = link.receive()
        if request is None:  # the tests are done
            return 0
        _reply(link, _answer(request, namespace))


def _reply(link, message):
    try:
        link.send(message)
    except OSError:
        raise SystemExit(0) from None  # the tests' process is gone
    except BaseException as exc:  # a value that could not be encoded
        link.send(_raised(exc))


def _answer(request, namespace):
    op = request[0]
    try:
        if op == "names":
            return "ok", {name: _describe(namespace, name) for name in request[1]}, []
        if op == "call":
            _, fn, args, kwargs = request
            result = fn(*args, **kwargs)
            changed = [(i, a) for i, a in enumerate(args) if type(a) in _MUTABLE]
            changed += [(k, v) for k, v in kwargs.items() if type(v) in _MUTABLE]
            return "ok", result, changed
        if op == "getattr":
            return "ok", getattr(request[1], request[2]), []
        if op == "setattr":
            setattr(request[1], request[2], request[3])
            return "ok", None, []
        if op == "iter":
            return "ok", iter(request[1]), []
        if op == "next":
            try:
                return "ok", next(request[1]), []
            except StopIteration:
                return ("stop",)
        raise ValueError("unknown request %r" % (op,))
    except BaseException as exc:  # the tests' process decides what it means
        return _raised(exc)


def _describe(namespace, name):
    if name not in namespace:
        return ("missing",)
    value = namespace[name]
    if isinstance(value, types.ModuleType) and type(getattr(value, "__name__", None)) is str:
        return "module", value.__name__
    return "value", value


def _raised(exc):
    if not isinstance(exc, SystemExit):  # Python prints no traceback for an exit
        leafe_program.print_exception(exc, SOLUTION)
    try:
        message = str(exc)[:2000]
    except BaseException:  # its __str__ may raise anything
        message = "(its message could not be printed)"
    return "raised", type(exc).__name__, message
