"""The in-sandbox half of `sandbox.judge_asserts`: run a submission, its setup and its
assert tests, and prove that every test ran to the end.

`judge_asserts` sends this file's text, followed by one call of `_judge(payload)`, as the
sandboxed program (`main.py`) to a fresh interpreter (the system Python, standard library
only; Python >= 3.8). Nothing in it runs in the judge's own process.

Why a harness: the submission runs in the same interpreter as its tests, so anything an
exit-status protocol trusts the submission can produce itself (`os._exit(97)`, `raise
SystemExit`, an `atexit` hook). Here completion is a per-run secret that the judge writes
into a pipe before the program starts; the harness reads it and closes that pipe before
any submitted code runs, and writes it back on a second pipe only after the last test
passed. Whatever the submission does (exit early by any means, print anything, write
anything to any descriptor) it cannot produce the secret, so it is never judged passed
without its tests having run.

The submission could still try to read the secret from memory, or change what its tests
compute. So, while submitted code runs:

- an audit hook (PEP 578; it cannot be removed once added) denies every route Python code
  has to another frame's variables or to raw memory: frames (`sys._getframe`, `tb_frame`,
  `gi_frame`, ...), object-graph walks (`gc.get_objects`, ...), `ctypes`, tracing and
  profiling hooks, `/proc/*/mem`, starting processes, changing (or, for the harness's own,
  reading) the code and defaults of functions the submission did not define; the process
  is non-dumpable, so no other process of its uid can read its memory;
- the tests see the submission's names only through guards: a callable is wrapped so that
  what it returns, and what it leaves in its arguments, is checked, deeply and without
  running any code of the submission, to be made of trusted types (built-in scalars and
  containers, a few standard-library types, the task's setup classes) or of objects the
  tests own (made by setup, or constructed by the tests from the submission's classes). A
  value of a class the submission defined (one whose `__eq__` always answers True, say)
  fails the test instead of comparing equal;
- after every guarded call and at the end, the modules loaded before the submission ran
  (`builtins` and this harness included) must hold the same objects and their Python
  classes the same attributes; no thread may have been started, no signal handler or
  garbage-collector callback installed, and the collector must still be off (it is turned
  off so that no finalizer of the submission runs between a guarded call and the comparison
  after it). A submission that patches `builtins.abs`, `math.isclose` or `Counter.__eq__`
  fails. The checks use only references taken before the submission ran.

Not covered: a test that calls methods of an object the tests constructed from the
submission's own class compares what those methods return without a guard.

A failure prints the exception's traceback (the frames of `solution.py`: the submission,
setup and tests joined, as `judge_asserts` numbers their lines) to stderr and exits with
status 1. Breaking the rules above raises `JudgeViolation`.
"""

__name__ = "leafe_judge_harness"  # noqa: A001  (this file's functions are not the submission's "__main__")

import _thread
import ast
import builtins
import gc
import linecache
import os
import signal
import sys
import traceback
import types

SOLUTION = "solution.py"  # the file name of the submission, setup and tests in tracebacks
HARNESS = "main.py"  # this file, in the sandbox
_MISSING = object()
# Module attributes the standard library itself rebinds while it works (not tampering).
_REBOUND_BY_STDLIB = frozenset({("tempfile", "tempdir"), ("tempfile", "_name_sequence")})
_DENIED_EVENTS = frozenset({
    "sys._current_frames", "sys._current_exceptions", "sys.settrace", "sys.setprofile",
    "sys.addaudithook", "sys.monitoring.register_callback", "gc.get_objects", "gc.get_referrers",
    "gc.get_referents", "os.fork", "os.forkpty", "os.exec", "os.posix_spawn", "os.spawn",
    "os.system", "subprocess.Popen", "pty.spawn",
})  # fmt: skip
_FRAME_ATTRIBUTES = frozenset({"tb_frame", "gi_frame", "cr_frame", "ag_frame", "f_back", "f_globals", "f_locals"})
_CODE_ATTRIBUTES = frozenset({"__code__", "__defaults__", "__kwdefaults__"})
_DENIED_IMPORTS = frozenset({"_ctypes", "ctypes", "_posixsubprocess", "_testcapi", "_testinternalcapi", "_xxsubinterpreters"})


class JudgeViolation(Exception):
    """The submission did something that would let a wrong program pass its tests."""

    __module__ = "builtins"  # tracebacks print "JudgeViolation: ...", like a built-in exception


def _judge(payload):
    # --- before any submitted code runs -------------------------------------------------
    read_fd, report_fd = (int(x) for x in os.environ.pop("LEAFE_JUDGE_FDS").split(","))
    secret = bytearray(os.read(read_fd, 256))
    os.close(read_fd)
    write, close, exit_now, to_bytes = os.write, os.close, os._exit, bytes
    try:
        import ctypes

        ctypes.CDLL(None).prctl(4, 0, 0, 0, 0)  # PR_SET_DUMPABLE = 0
    except Exception:
        pass
    gc.disable()
    armed = [False]
    pristine_builtins = dict(builtins.__dict__)

    code, setup, tests = payload["code"], payload["setup"], payload["tests"]
    entry_point = payload.get("entry_point")
    head = code + "\n" + setup + "\n"
    text = head + tests + "\n" + ("check(%s)\n" % entry_point if entry_point else "")
    linecache.cache[SOLUTION] = (len(text), None, text.splitlines(True), SOLUTION)
    parts = [(code, 1), (setup, code.count("\n") + 2), (text[len(head):], head.count("\n") + 1)]

    def fail(exc):
        """Never returns: forget the secret, then print the traceback."""
        for i in range(len(secret)):
            secret[i] = 0
        try:
            close(report_fd)
        except OSError:
            pass
        armed[0] = False
        builtins.__dict__.update(pristine_builtins)  # so that the traceback can be printed
        try:
            _print_traceback(exc)
        finally:
            exit_now(1)

    try:
        compiled = [compile("\n" * (start - 1) + source, SOLUTION, "exec") for source, start in parts]
    except SyntaxError as exc:
        fail(exc)
    missing = set()
    for source, _ in parts:
        missing |= _preimport(source)
    watch = _Watch(missing, globals())
    watch_check = watch.check
    trusted = _Trusted(sys.modules)
    guard_class = _Guard
    armed[0] = True
    sys.addaudithook(_hook(armed, watch.protected_functions))

    # --- the submission, its setup, its tests ----------------------------------------------
    main_module = types.ModuleType("__main__")
    main_module.__dict__["__builtins__"] = builtins
    user = main_module.__dict__
    sys.modules["__main__"] = main_module  # `import __main__` gives the submission its own namespace
    try:
        exec(compiled[0], user)
        before_setup = dict(user)
        exec(compiled[1], user)
        watch_check("the submission")  # first: the rest trusts builtins and the harness
        setup_names = {k for k, v in user.items() if before_setup.get(k, _MISSING) is not v}
        setup_values = [user[k] for k in setup_names]
        trusted.add_setup_classes(setup_values)
        watch.protect_setup(setup_values, trusted.setup_classes)
        guard = guard_class(trusted, watch_check)
        namespace = {"__name__": "__main__", "__builtins__": builtins}
        for key, value in list(user.items()):
            if not (key.startswith("__") and key.endswith("__")):
                value = guard.global_value(value, key, key in setup_names, watch.modules)
                if value is not _MISSING:
                    namespace[key] = value
        exec(compiled[2], namespace)
        watch_check("the tests")
    except BaseException as exc:  # SystemExit and KeyboardInterrupt too: the tests did not all run
        fail(exc)
    write(report_fd, to_bytes(secret))
    exit_now(0)


def _print_traceback(exc):
    """The exception as Python prints it, from the first frame in solution.py on, without
    the harness's own frames."""
    tb = exc.__traceback__
    while tb is not None and tb.tb_frame.f_code.co_filename != SOLUTION:
        tb = tb.tb_next
    lines = []
    if tb is not None:
        frames = [f for f in traceback.extract_tb(tb) if os.path.basename(f.filename) != HARNESS]
        lines = ["Traceback (most recent call last):\n"] + traceback.format_list(frames)
    lines += traceback.format_exception_only(type(exc), exc)
    if not isinstance(exc, Exception):  # SystemExit, KeyboardInterrupt, GeneratorExit
        lines.append("The program exited before all the tests ran (%s).\n" % lines[-1].strip())
    sys.__stderr__.write("".join(lines))
    sys.__stderr__.flush()


def _preimport(source):
    """Import every module the text names before the submission runs, so that the tests
    get their pristine state; return the names that could not be imported."""
    try:
        tree = ast.parse(source)
    except SyntaxError:
        return set()
    missing = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            names = [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            names = [node.module]
        else:
            continue
        for name in names:
            if name.split(".")[0] in ("main", "__main__") or name in _DENIED_IMPORTS:
                continue
            try:
                __import__(name)
            except BaseException:
                missing.add(name)
    return missing


def _hook(armed, protected_functions, denied=_DENIED_EVENTS, frames=_FRAME_ATTRIBUTES, code=_CODE_ATTRIBUTES,
          imports=_DENIED_IMPORTS, function=types.FunctionType, harness=__name__, _type=type, _id=id,
          _isinstance=isinstance, _str=str, _bytes=bytes, fsdecode=os.fsdecode):  # fmt: skip
    """The audit hook (every reference it uses is bound here, before the submission runs)."""

    def _harness_owned(fn):
        module = fn.__module__
        return _type(module) is _str and module == harness

    def _submission_owned(fn):
        module = fn.__module__
        return _type(module) is _str and module == "__main__"

    def hook(event, args):
        if not armed[0]:
            return
        if event == "sys._getframe":  # ValueError: what the standard library expects ("stack not deep enough")
            raise ValueError("the judge denies frame access (sys._getframe) to the code it judges")
        if event in denied or event.startswith("ctypes."):
            raise RuntimeError("the judge denies %s to the code it judges" % event)
        if event == "object.__getattr__":
            if args[1] in frames or (args[1] in code and _type(args[0]) is function and _harness_owned(args[0])):
                raise AttributeError("the judge denies access to %s to the code it judges" % args[1])
        elif event == "object.__setattr__" and _type(args[0]) is function:
            if not _submission_owned(args[0]) or _id(args[0]) in protected_functions:
                raise RuntimeError("the judge denies changing %s of a function the submission did not define" % args[1])
        elif event == "import" and args[0] in imports:
            raise ImportError("the judge denies importing %s in the code it judges" % args[0])
        elif event == "open" and _isinstance(args[0], (_str, _bytes)):
            path = fsdecode(args[0])
            if path.startswith("/proc/") and path.rstrip("/").rsplit("/", 1)[-1] in ("mem", "environ", "maps"):
                raise PermissionError("the judge denies opening %s to the code it judges" % path)

    return hook


class _Watch:
    """What must not change while the tests run (see the module docstring)."""

    def __init__(self, missing, harness_globals):
        self.missing = missing
        self.modules, self.meta_path, self.path_hooks = sys.modules, list(sys.meta_path), list(sys.path_hooks)
        dicts = [("builtins", builtins.__dict__, dict(builtins.__dict__)), ("this harness", harness_globals, dict(harness_globals))]
        self.module_dicts = []  # (name, module, its attributes at the snapshot)
        self.class_dicts = []  # (class, its attributes at the snapshot)
        seen = set()
        namespaces = [(name, m.__dict__) for name, m in list(sys.modules.items()) if name not in ("__main__", "sys") and type(m) is types.ModuleType]
        for name, namespace in namespaces + [("this harness", harness_globals)]:
            if namespace is not harness_globals:
                self.module_dicts.append((name, self.modules[name], dict(namespace)))
            for value in list(namespace.values()):
                if type(value) is type and id(value) not in seen and not _immutable(value):
                    seen.add(id(value))
                    self.class_dicts.append((value, dict(value.__dict__)))
        self.first = dicts  # checked first, with bound references only: the rest relies on them
        self.signals = [(s, signal.getsignal(s)) for s in sorted(signal.valid_signals())]
        self.protected_functions = set()
        self.changed = self._changed()

    def protect_setup(self, values, classes):
        for value in values:
            if type(value) is types.FunctionType:
                self.protected_functions.add(id(value))
        for cls in classes:
            self.class_dicts.append((cls, dict(cls.__dict__)))

    def _changed(self, missing_value=_MISSING, rebound=_REBOUND_BY_STDLIB, _sys=sys, _len=len, _any=any,
                 thread_count=_thread._count, getsignal=signal.getsignal, gc_on=gc.isenabled, gc_callbacks=gc.callbacks):  # fmt: skip
        first, module_dicts, class_dicts, signals, missing = self.first, self.module_dicts, self.class_dicts, self.signals, self.missing
        modules, meta_path, path_hooks = self.modules, self.meta_path, self.path_hooks

        def changed():
            for name, now, before in first:
                for key, value in before.items():
                    if now.get(key, missing_value) is not value:
                        return "it changed %s: %s" % (name, key)
                if now.keys() != before.keys():
                    return "it added names to %s" % name
            if _sys.modules is not modules or _sys.meta_path != meta_path or _sys.path_hooks != path_hooks:
                return "it replaced sys.modules, sys.meta_path or sys.path_hooks"
            for name, module, before in module_dicts:
                if modules.get(name) is not module:
                    return "it replaced the module %s in sys.modules" % name
                now = module.__dict__
                for key, value in before.items():
                    if now.get(key, missing_value) is not value and (name, key) not in rebound:
                        return "it changed %s.%s" % (name, key)
            for cls, before in class_dicts:
                now = cls.__dict__
                if _len(now) != _len(before) or _any(now.get(k, missing_value) is not v for k, v in before.items()):
                    return "it changed the class %s" % cls.__qualname__
            for name in missing:
                if name in modules:
                    return "it put the module %s, which does not exist here, in sys.modules" % name
            if thread_count():
                return "it started a thread"
            for s, handler in signals:
                if getsignal(s) is not handler:
                    return "it installed a signal handler"
            if gc_on() or gc_callbacks:
                return "it turned the garbage collector on or gave it a callback"
            return None

        return changed

    def check(self, who):
        reason = self.changed()
        if reason:
            raise JudgeViolation("%s changed the interpreter the tests run in: %s" % (who, reason))


def _module_of(cls):
    """A plain class's module name, without running any code of the class."""
    name = type.__dict__["__module__"].__get__(cls)
    return name if type(name) is str else None


def _immutable(cls):
    return bool(getattr(cls, "__flags__", 0) & (1 << 8))  # Py_TPFLAGS_IMMUTABLETYPE (3.10+)


class _Trusted:
    """The types whose values the tests may receive, by identity (membership tests on the
    classes themselves could run a metaclass's __eq__)."""

    def __init__(self, modules):
        def types_in(module, names):
            found = [getattr(modules.get(module), name, None) for name in names]
            return [t for t in found if isinstance(t, type)]

        scalars = [
            int, float, complex, bool, str, bytes, bytearray, type(None), type(NotImplemented), type(Ellipsis),
            range, type, slice,
        ]
        scalars += types_in("decimal", ["Decimal"]) + types_in("array", ["array"])
        scalars += types_in("datetime", ["date", "datetime", "time", "timedelta", "timezone"])
        scalars += types_in("re", ["Pattern", "Match"])
        self.scalars = {id(t): t for t in scalars}
        self.sequences = {id(t): t for t in [list, tuple, set, frozenset] + types_in("collections", ["deque"])}
        self.sequences.update({id(type(v)): type(v) for v in ({}.keys(), {}.values(), {}.items())})
        self.mappings = {id(t): t for t in [dict] + types_in("collections", ["OrderedDict", "defaultdict", "Counter"])}
        self.objects = {id(t): t for t in types_in("fractions", ["Fraction"])}  # Python classes: walk their slots
        self.setup_classes = []
        iterators = [types.GeneratorType, map, filter, zip, enumerate, reversed]
        iterators += [type(iter(x)) for x in ([], (), range(1), "", "\u00e9", b"", bytearray(), {}, set())]
        iterators += [type(iter(x)) for x in ({}.values(), {}.items())]
        iterators += [t for t in vars(modules.get("itertools") or types).values() if type(t) is type]
        self.iterators = {id(t): t for t in iterators}
        callables = [
            types.FunctionType, types.BuiltinFunctionType, types.MethodType, types.MethodWrapperType,
            types.WrapperDescriptorType, types.MethodDescriptorType,
        ]
        callables += types_in("functools", ["partial"])
        self.callables = {id(t): t for t in callables}

    def add_setup_classes(self, values):
        for value in values:
            if type(value) is type and _module_of(value) == "__main__":
                self.objects[id(value)] = value
                self.setup_classes.append(value)

    def is_trusted_class(self, cls):
        i = id(cls)
        return i in self.scalars or i in self.sequences or i in self.mappings or i in self.objects

    def check(self, value, where, allowed=None, limit=5_000_000):
        """Raise JudgeViolation unless `value` is made only of trusted types, or of the
        objects in `allowed` (id -> object: the tests' own). Runs no code of the
        submission: types are compared by identity, only built-in containers are walked."""
        stack, seen = [value], set()
        while stack:
            x = stack.pop()
            t = type(x)
            i = id(t)
            if allowed is not None and allowed.get(id(x)) is x:
                continue
            if i in self.scalars:
                if t is type and not (self.is_trusted_class(x) or _module_of(x) == "builtins"):
                    raise JudgeViolation("%s holds the class %s, which the submission defined" % (where, x.__qualname__))
                continue
            if id(x) in seen:
                continue
            seen.add(id(x))
            if len(seen) > limit:
                raise JudgeViolation("%s is too large for the judge to check (over %d objects)" % (where, limit))
            if i in self.sequences:
                stack.extend(x)
            elif i in self.mappings:
                factory = getattr(x, "default_factory", None)
                if factory is not None and not (type(factory) is type and self.is_trusted_class(factory)):
                    raise JudgeViolation("%s is a defaultdict whose default factory is not a trusted type" % where)
                stack.extend(dict.keys(x))
                stack.extend(dict.values(x))
            elif i in self.objects:
                for cls in t.__mro__:
                    slots = cls.__dict__.get("__slots__", ())
                    stack.extend(getattr(x, s, None) for s in ([slots] if isinstance(slots, str) else slots))
                d = getattr(x, "__dict__", None)
                if type(d) is dict:
                    stack.extend(d.values())
                for base in (list, tuple, set, frozenset):
                    if issubclass(t, base):
                        stack.extend(base.__iter__(x))
                if issubclass(t, dict):
                    stack.extend(dict.keys(x))
                    stack.extend(dict.values(x))
            elif t is slice:
                stack.extend((x.start, x.stop, x.step))
            else:
                raise JudgeViolation(
                    "%s holds a value of type %s; the tests may only receive values of built-in types "
                    "(or of the task's own classes)" % (where, t.__qualname__)
                )

    def leaves(self, value, into):
        """Add to `into` (id -> object) every object in `value` that `check` would not accept."""
        stack, seen = [value], set()
        while stack:
            x = stack.pop()
            i = id(type(x))
            if i in self.scalars or id(x) in seen:
                continue
            seen.add(id(x))
            if i in self.sequences:
                stack.extend(x)
            elif i in self.mappings:
                stack.extend(dict.keys(x))
                stack.extend(dict.values(x))
            elif i not in self.objects and type(x) is not slice:
                into[id(x)] = x


class _Guard:
    """What the submission hands to the tests, wrapped or checked (see the module docstring).
    Built after the submission's own code ran and was found not to have changed anything,
    it keeps bound references only."""

    def __init__(self, trusted, watch_check):
        self.check, self.leaves, self.watch_check = trusted.check, trusted.leaves, watch_check
        self.is_trusted_class, self.callables, self.iterators = trusted.is_trusted_class, trusted.callables, trusted.iterators
        self.tests_own = {}  # id -> object: what setup made and what the tests constructed
        self.raw = {}  # id(guarded) -> (guarded, the submission's callable)
        self.call_guard, self.result, self.checked_iter = self._call_guard, self._result, self._checked_iter

    def global_value(self, value, name, from_setup, modules):
        """A name the submission or setup defined, as the tests see it; _MISSING: not at all.
        Setup's values are the tests' own data (even when made of the submission's classes)."""
        t = type(value)
        if from_setup and not callable(value):
            self.leaves(value, self.tests_own)
            return value
        if t is types.ModuleType:
            module_name = value.__dict__.get("__name__")
            return value if type(module_name) is str and modules.get(module_name) is value else _MISSING
        if issubclass(t, type):  # a class
            if t is type and (self.is_trusted_class(value) or _module_of(value) == "builtins"):
                return value
            return self.call_guard(value, name)
        if id(t) in self.callables or callable(value):
            return self.call_guard(value, name)
        try:
            self.check(value, "the global %s" % name)
        except JudgeViolation:
            return _MISSING
        return value

    def _call_guard(self, fn, name, _type=type, _issubclass=issubclass, _dict=dict, _tuple=tuple, _id=id):
        """`fn` for the tests: what it returns and leaves in its arguments is checked. A class
        of the submission constructs an object that the tests own from then on."""
        check, leaves, watch_check, result = self.check, self.leaves, self.watch_check, self.result
        tests_own, raw = self.tests_own, self.raw
        constructs = _issubclass(_type(fn), type)

        def unwrap(value):  # the submission never gets hold of a guard (nor of what it holds)
            pair = raw.get(_id(value))
            return pair[1] if pair is not None and pair[0] is value else value

        def guarded(*args, **kwargs):
            args = _tuple(unwrap(a) for a in args)
            kwargs = {k: unwrap(v) for k, v in kwargs.items()}
            before = _dict(tests_own)
            leaves((args, kwargs), before)
            try:
                value = fn(*args, **kwargs)
            finally:
                watch_check("calling %s" % name)
            check((args, kwargs), "an argument of %s after the call" % name, before)
            if constructs and _type(value) is fn:
                tests_own[_id(value)] = value
                return value
            return result(value, name)

        guarded.__name__ = guarded.__qualname__ = str(name)
        raw[id(guarded)] = (guarded, fn)
        return guarded

    def _result(self, value, name, _type=type, _issubclass=issubclass, _id=id):
        t = _type(value)
        if _issubclass(t, type) or _id(t) in self.callables:
            if t is type and self.is_trusted_class(value) and _module_of(value) != "__main__":
                return value
            return self.call_guard(value, "the result of %s" % name)
        if _id(t) in self.iterators:
            return self.checked_iter(value, name)
        self.check(value, "the value %s returned" % name, self.tests_own)
        return value

    def _checked_iter(self, iterator, name, _next=next):
        check, watch_check, tests_own = self.check, self.watch_check, self.tests_own
        while True:
            try:
                item = _next(iterator)
            except StopIteration:
                return
            finally:
                watch_check("iterating over the result of %s" % name)
            check(item, "a value the result of %s yielded" % name, tests_own)
            yield item
