"""Wrong programs that try to be judged right. None may pass; right programs still do.

Each attack below pairs a WRONG solution (its function returns the wrong answer) with a
trick that would make a naive judge say "passed": forging the completion signal, handing
the tests objects that compare equal to anything, patching what the tests use, reaching
the judge's secret through frames, memory or other processes. The assert judge
(`judge_asserts`, MBPP and HumanEval) must answer something other than `passed` to every
one; the stdin/stdout judge (`judge_stdio`, CodeContests) compares outputs in the parent
and must not be fooled either. The last tests check that legitimate programs using the
same features (generators, classes, namedtuples, setup objects, `math`) still pass.
"""

from __future__ import annotations

import pytest

from leafe_recipe.sandbox import Limits, Verdict, judge_asserts, judge_stdio

LIMITS = Limits(cpu_s=2, wall_s=4, memory_mb=512, output_bytes=1 << 20)
TESTS = ["assert f(1) == 2", "assert f(2) == 3"]  # f(x) = x + 1; every attack's f is wrong

WRONG = "def f(x):\n    return 0\n"

# name -> (submission, tests); the submission's f never computes x + 1.
ASSERT_ATTACKS: dict[str, tuple[str, list[str] | str]] = {
    # --- forging completion ----------------------------------------------------------------
    "os._exit(97) at top level": ("import os\nos._exit(97)\n" + WRONG, TESTS),
    "os._exit(0) at top level": ("import os\nos._exit(0)\n" + WRONG, TESTS),
    "raise SystemExit(97) at top level": ("raise SystemExit(97)\n" + WRONG, TESTS),
    "sys.exit(0) at top level": ("import sys\nsys.exit(0)\n" + WRONG, TESTS),
    "SystemExit inside the function": ("def f(x):\n    raise SystemExit(97)\n", TESTS),
    "os._exit(97) inside the function": ("import os\ndef f(x):\n    os._exit(97)\n", TESTS),
    "KeyboardInterrupt inside the function": ("def f(x):\n    raise KeyboardInterrupt\n", TESTS),
    "atexit hook exits 97": ("import atexit, os\natexit.register(lambda: os._exit(97))\n" + WRONG, TESTS),
    "atexit hook exits 0": ("import atexit, os\natexit.register(lambda: os._exit(0))\n" + WRONG, TESTS),
    "sys.excepthook exits 97": ("import sys, os\nsys.excepthook = lambda *a: os._exit(97)\n" + WRONG, TESTS),
    "writes junk on every descriptor then exits": (
        "import os\nfor fd in range(3, 256):\n    try:\n        os.write(fd, b'0' * 64)\n    except OSError:\n"
        "        pass\nos._exit(0)\n" + WRONG,
        TESTS,
    ),
    "prints a success message": ("print('All 2 tests passed.')\nimport os\nos._exit(0)\n" + WRONG, TESTS),
    "reads the secret pipe": (
        "import os\nsecret = b''\nfor fd in range(3, 256):\n    try:\n        secret += os.read(fd, 256)\n"
        "    except OSError:\n        pass\nfor fd in range(3, 256):\n    try:\n        os.write(fd, secret)\n"
        "    except OSError:\n        pass\nos._exit(0)\n" + WRONG,
        TESTS,
    ),
    "reads /proc/self/environ and the program file": (
        "import os\nfor p in ('/proc/self/environ', 'main.py'):\n    try:\n        data = open(p, 'rb').read()\n"
        "    except OSError:\n        data = b''\n    for fd in range(3, 256):\n        try:\n            os.write(fd, data[:64])\n"
        "        except OSError:\n            pass\nos._exit(0)\n" + WRONG,
        TESTS,
    ),
    # --- values that compare equal to anything ------------------------------------------------
    "an object whose __eq__ is always True": (
        "class A:\n    def __eq__(self, o):\n        return True\n    __hash__ = object.__hash__\ndef f(x):\n    return A()\n",
        TESTS,
    ),
    "an int subclass whose __eq__ is always True": (
        "class I(int):\n    def __eq__(self, o):\n        return True\n    __hash__ = int.__hash__\ndef f(x):\n    return I(0)\n",
        TESTS,
    ),
    "a str subclass whose __eq__ is always True": (
        "class S(str):\n    def __eq__(self, o):\n        return True\n    __hash__ = str.__hash__\ndef f(x):\n    return S('no')\n",
        ['assert f("a") == "b"'],
    ),
    "arithmetic that always gives 0": (
        "class Z:\n    def __sub__(self, o):\n        return 0\n    def __rsub__(self, o):\n        return 0\ndef f(x):\n    return Z()\n",
        ["assert abs(f(1) - 2) < 1e-6"],
    ),
    "an always-equal object inside a list": (
        "class A:\n    def __eq__(self, o):\n        return True\ndef f(x):\n    return [A(), A()]\n",
        ["assert f(1) == [2, 3]"],
    ),
    "an always-equal object as a dict value": (
        "class A:\n    def __eq__(self, o):\n        return True\ndef f(x):\n    return {'a': A()}\n",
        ["assert f(1) == {'a': 2}"],
    ),
    "a generator of always-equal objects": (
        "class A:\n    def __eq__(self, o):\n        return True\ndef f(x):\n    yield A()\n",
        ["assert list(f(1)) == [2]"],
    ),
    "a returned function that returns an always-equal object": (
        "class A:\n    def __eq__(self, o):\n        return True\ndef f(x):\n    return lambda y: A()\n",
        ["assert f(1)(1) == 2"],
    ),
    "a defaultdict whose factory makes always-equal objects": (
        "import collections\nclass A:\n    def __eq__(self, o):\n        return True\n"
        "def f(x):\n    return collections.defaultdict(A)\n",
        ["assert f(1)['k'] == 2"],
    ),
    "an always-equal object put into the caller's list": (
        "class A:\n    def __eq__(self, o):\n        return True\ndef f(lst):\n    lst[:] = [A(), A()]\n",
        ["lst = [3, 1]\nf(lst)\nassert lst == [1, 3]"],
    ),
    "a class with a metaclass __eq__ returned as a value": (
        "class M(type):\n    def __eq__(cls, o):\n        return True\n    __hash__ = type.__hash__\n"
        "class C(metaclass=M):\n    pass\ndef f(x):\n    return C\n",
        ["assert f(1) == int"],
    ),
    "a __class__ property lying about the type": (
        "class A:\n    __class__ = property(lambda self: int)\n    def __eq__(self, o):\n        return True\n"
        "def f(x):\n    return A()\n",
        TESTS,
    ),
    # --- patching what the tests use -----------------------------------------------------
    "patches builtins.abs": ("import builtins\nbuiltins.abs = lambda x: 0\n" + WRONG, ["assert abs(f(1) - 2) < 1e-6"]),
    "patches builtins.sorted inside the function": (
        "import builtins\ndef f(x):\n    builtins.sorted = lambda *a, **k: [1, 2, 3]\n    return [9]\n",
        ["assert sorted(f(1)) == [1, 2, 3]"],
    ),
    "patches builtins.isinstance": (
        "import builtins\nbuiltins.isinstance = lambda *a: True\n" + WRONG, ["assert isinstance(f(1), str)"],
    ),
    "patches math.isclose": ("import math\nmath.isclose = lambda *a, **k: True\n" + WRONG, ["import math\nassert math.isclose(f(1), 2)"]),
    "patches math.pi during the call": (
        "import math\ndef f(x):\n    math.pi = 0\n    return 0\n", ["import math\nassert f(1) == 4 * math.pi"],
    ),
    "replaces math in sys.modules": (
        "import sys, types\nfake = types.ModuleType('math')\nfake.isclose = lambda *a, **k: True\nsys.modules['math'] = fake\n" + WRONG,
        ["import math\nassert math.isclose(f(1), 2)"],
    ),
    "gives the tests a fake module by the same name": (
        "import types\nmath = types.ModuleType('math')\nmath.isclose = lambda *a, **k: True\n" + WRONG,
        ["assert math.isclose(f(1), 2)"],
    ),
    "installs an import hook": (
        "import sys, types\nclass Finder:\n    def find_spec(self, name, path, target=None):\n        return None\n"
        "sys.meta_path.insert(0, Finder())\n" + WRONG,
        TESTS,
    ),
    "patches Counter.__eq__": (
        "import collections\ncollections.Counter.__eq__ = lambda s, o: True\ndef f(x):\n    return collections.Counter('a')\n",
        ["from collections import Counter\nassert f(1) == Counter('bb')"],
    ),
    "changes the code of a standard-library function": (
        "import heapq\ndef fake(n, it, key=None):\n    return [2]\nheapq.nlargest.__code__ = fake.__code__\n" + WRONG,
        ["import heapq\nassert heapq.nlargest(1, [f(1)]) == [2]"],
    ),
    "patches a setup class": (
        WRONG + "def g(x):\n    Box.__eq__ = lambda s, o: True\n    return Box(0)\n",
        ["assert g(1) == Box(2)"],
    ),
    "redefines the test's check function": (
        "def check(candidate):\n    pass\n" + WRONG, "def check(candidate):\n    assert candidate(1) == 2\n",
    ),
    "a thread patches math.pi after the call": (
        "import threading, math, time\ndef later():\n    time.sleep(0.05)\n    math.pi = 0\n"
        "def f(x):\n    threading.Thread(target=later).start()\n    time.sleep(0.01)\n    return 0\n",
        ["import math, time\nv = f(1)\ntime.sleep(0.2)\nassert v == 4 * math.pi"],
    ),
    "a signal handler patches math.pi after the call": (
        "import signal, math\ndef h(*a):\n    math.pi = 0\n"
        "def f(x):\n    signal.signal(signal.SIGALRM, h)\n    signal.setitimer(signal.ITIMER_REAL, 0.05)\n    return 0\n",
        ["import math, time\nv = f(1)\ntime.sleep(0.2)\nassert v == 4 * math.pi"],
    ),
    "a finalizer patches math.pi when the collector runs": (
        "import gc, math\nclass D:\n    def __del__(self):\n        math.pi = 0\n"
        "def f(x):\n    d = D()\n    d.me = d\n    gc.enable()\n    return 0\n",
        ["import math, gc\nv = f(1)\ngc.collect()\nassert v == 4 * math.pi"],
    ),
    # --- reaching the secret -----------------------------------------------------------------
    "walks frames with sys._getframe": (
        "import sys, os\ndef f(x):\n    fr = sys._getframe(1)\n    while fr:\n        for v in fr.f_locals.values():\n"
        "            if isinstance(v, bytearray):\n                for fd in range(3, 256):\n                    try:\n"
        "                        os.write(fd, bytes(v))\n                    except OSError:\n                        pass\n"
        "                os._exit(0)\n        fr = fr.f_back\n    return 0\n",
        TESTS,
    ),
    "walks frames from a traceback": (
        "import os\ndef f(x):\n    try:\n        raise ValueError\n    except ValueError as e:\n        fr = e.__traceback__.tb_frame\n"
        "    while fr:\n        for v in fr.f_locals.values():\n            if isinstance(v, bytearray):\n"
        "                for fd in range(3, 256):\n                    try:\n                        os.write(fd, bytes(v))\n"
        "                    except OSError:\n                        pass\n                os._exit(0)\n        fr = fr.f_back\n    return 0\n",
        TESTS,
    ),
    "scans the heap with gc.get_objects": (
        "import gc, os\nfor o in gc.get_objects():\n    if isinstance(o, bytearray) and len(o) == 64:\n"
        "        for fd in range(3, 256):\n            try:\n                os.write(fd, bytes(o))\n            except OSError:\n"
        "                pass\n        os._exit(0)\n" + WRONG,
        TESTS,
    ),
    "reads memory with ctypes": (
        "import ctypes, os\nos.write(4, ctypes.string_at(id(object), 64))\nos._exit(0)\n" + WRONG, TESTS,
    ),
    "reads /proc/self/mem": ("data = open('/proc/self/mem', 'rb').read(64)\n" + WRONG, TESTS),
    "forks a child": ("import os\nif os.fork() == 0:\n    os._exit(0)\n" + WRONG, TESTS),
    "starts a process": ("import subprocess\nsubprocess.run(['true'])\n" + WRONG, TESTS),
    "installs a trace function": ("import sys\nsys.settrace(lambda *a: None)\n" + WRONG, TESTS),
    "reaches the harness through __main__": (
        "import __main__\nassert not hasattr(__main__, '_judge'), 'the harness is reachable'\n" + WRONG, TESTS,
    ),
    "patches the harness's classes": (
        "for c in object.__subclasses__():\n    if c.__name__ in ('_Guard', '_Trusted', '_Watch'):\n"
        "        for k in list(vars(c)):\n            if not k.startswith('__'):\n                setattr(c, k, lambda *a, **kw: None)\n" + WRONG,
        TESTS,
    ),
    "reads the harness's code": (
        "for c in object.__subclasses__():\n    if c.__name__ == '_Watch':\n        c.check.__code__\n" + WRONG, TESTS,
    ),
}

SETUP = {"patches a setup class": "class Box:\n    def __init__(self, v):\n        self.v = v\n"}


@pytest.mark.parametrize("name", list(ASSERT_ATTACKS))
def test_no_wrong_program_is_judged_passed(name):
    code, tests = ASSERT_ATTACKS[name]
    entry = "f" if name == "redefines the test's check function" else None
    result = judge_asserts(code, tests, LIMITS, setup=SETUP.get(name, ""), entry_point=entry)
    assert not result.passed, f"{name}: judged passed\n{result.details}"


def test_the_harness_is_not_reachable_through_main():
    result = judge_asserts("import __main__\nok = not hasattr(__main__, '_judge')\ndef f(x):\n    return x + 1\n", ["assert ok"] + TESTS, LIMITS)
    assert result.passed, result.details


@pytest.mark.parametrize(
    "code",
    [
        "def f(x):\n    return x + 1\n",
        "import os\ndef f(x):\n    return x + 1\nos.write(1, b'noise on stdout\\n')\n",
        "import atexit, os\natexit.register(lambda: os._exit(3))\ndef f(x):\n    return x + 1\n",
    ],
)
def test_a_right_program_passes_whatever_else_it_does(code):
    assert judge_asserts(code, TESTS, LIMITS).passed


@pytest.mark.parametrize(
    "code, tests, setup",
    [
        ("def f(n):\n    for i in range(n):\n        yield i * i\n", ["assert list(f(3)) == [0, 1, 4]"], ""),
        ("from collections import namedtuple\nP = namedtuple('P', 'x y')\ndef f():\n    return tuple(P(1, 2))\n", ["assert f() == (1, 2)"], ""),
        ("from collections import Counter\ndef f(s):\n    return Counter(s)\n", ["assert f('aab') == {'a': 2, 'b': 1}"], ""),
        ("from fractions import Fraction\ndef f():\n    return Fraction(1, 3)\n", ["from fractions import Fraction\nassert f() == Fraction(2, 6)"], ""),
        ("import math\ndef f(r):\n    return math.pi * r * r\n", ["import math\nassert math.isclose(f(1), math.pi)"], ""),
        ("def f(k):\n    return lambda x: x + k\n", ["assert f(1)(2) == 3"], ""),
        ("def f(lst):\n    lst.sort()\n", ["lst = [3, 1]\nf(lst)\nassert lst == [1, 3]"], ""),
        ("def f(apply, x):\n    return apply(x)\n", ["assert f(lambda v: v * 2, 4) == 8"], ""),
        ("class Pair:\n    def __init__(self, a, b):\n        self.a, self.b = a, b\ndef f(ps):\n    return sum(p.a for p in ps)\n",
         ["assert f([Pair(1, 2), Pair(3, 4)]) == 4"], ""),
        ("def height(node):\n    return 0 if node is None else 1 + max(height(node.left), height(node.right))\n",
         ["assert height(root) == 2"], "class Node:\n    def __init__(self, l=None, r=None):\n        self.left, self.right = l, r\nroot = Node(Node())\n"),
        ("def f(d):\n    return {k: v for k, v in sorted(d.items())}\n", ["assert f({'b': 1, 'a': 2}) == {'a': 2, 'b': 1}"], ""),
        ("import re\ndef f(s):\n    return re.findall(r'\\d+', s)\n", ["assert f('a1b22') == ['1', '22']"], ""),
    ],
)
def test_legitimate_programs_using_the_guarded_features_pass(code, tests, setup):
    result = judge_asserts(code, tests, LIMITS, setup=setup)
    assert result.passed, result.details


# --- stdin/stdout: the parent compares outputs -------------------------------------------------

STDIO_TESTS = [("1 2\n", "3\n"), ("5 7\n", "12\n")]
STDIO_ATTACKS = {
    "exits 0 with nothing printed": "import os\nos._exit(0)\n",
    "prints the first test's answer always": "print(3)\n",
    "prints every plausible answer": "print(3)\nprint(12)\n",
    "prints an accepted-looking message": "print('Accepted')\n",
    "prints nan / inf": "print(float('nan'))\n",
    "right output, then a crash": "a, b = map(int, input().split())\nprint(a + b)\nraise SystemExit(1)\n",
    "hard-codes the first test": "print(3 if input().split() == ['1', '2'] else 0)\n",
    "floods the output": "print('3 ' * 10_000_000)\n",
}


@pytest.mark.parametrize("name", list(STDIO_ATTACKS))
def test_no_wrong_stdio_program_is_judged_passed(name):
    result = judge_stdio(STDIO_ATTACKS[name], STDIO_TESTS, LIMITS)
    assert not result.passed, f"{name}: judged passed\n{result.details}"


def test_a_right_stdio_program_passes():
    assert judge_stdio("a, b = map(int, input().split())\nprint(a + b)\n", STDIO_TESTS, LIMITS).passed
