"""The stdin/stdout checker: CodeContests' rule for comparing a program's output.

deepmind/code_contests, execution/tester_sandboxer.cc, ``OutputsMatch`` and
``ValuesMatch``: both texts are split on any whitespace (so line breaks, trailing spaces
and blank lines do not matter) and lower-cased; the token lists must have the same length
and each pair must match: two integers must be equal, two numbers of which one is not an
integer must differ by less than 1e-5 (``kDoublePrecision``, an absolute tolerance),
anything else must be the same text. In that file the integer branch comes after a
floating-point one that every integer also satisfies (``SimpleAtod`` parses "3"), so it
never runs and large integers compare as doubles. This module applies the rule its comment
states: an expected integer requires an integer printed with exactly that value, at any
size (so a float printout that differs in its last digits is a wrong answer).

Only plain decimal numbers count as numbers (no ``nan``, ``inf``, ``0x``, ``1_000``): such
words compare as text.
"""

from __future__ import annotations

import math
import re

_INT_RE = re.compile(r"[+-]?\d+\Z")
_FLOAT_RE = re.compile(r"[+-]?(?:\d+\.?\d*|\.\d+)(?:[eE][+-]?\d+)?\Z")
CODECONTESTS_FLOAT_TOLERANCE = 1e-5


def outputs_match(
    expected: str, actual: str, *, float_tol: float = CODECONTESTS_FLOAT_TOLERANCE, case_sensitive: bool = False
) -> bool:
    """True when ``actual`` matches ``expected`` token by token (see the module docstring);
    ``float_tol`` is the absolute tolerance for non-integer numbers."""
    exp, act = expected.split(), actual.split()
    if len(exp) != len(act):
        return False
    return all(_tokens_match(e, a, float_tol, case_sensitive) for e, a in zip(exp, act))


def _tokens_match(expected: str, actual: str, float_tol: float, case_sensitive: bool) -> bool:
    if expected == actual or (not case_sensitive and expected.lower() == actual.lower()):
        return True
    if _INT_RE.match(expected):
        return bool(_INT_RE.match(actual)) and int(expected) == int(actual)
    if not (_FLOAT_RE.match(expected) and _FLOAT_RE.match(actual)):
        return False
    try:
        e, a = float(expected), float(actual)
    except (OverflowError, ValueError):  # pragma: no cover - the regex admits only what float() parses
        return False
    return math.isfinite(e) and math.isfinite(a) and abs(e - a) < float_tol
