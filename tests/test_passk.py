from fractions import Fraction
from math import comb

import numpy as np
import pytest

from leafe_recipe.passk import ks_up_to, mean_pass_at_k, pass_at_k


def exact(n: int, c: int, k: int) -> Fraction:
    return 1 - Fraction(comb(n - c, k), comb(n, k))


@pytest.mark.parametrize("n", [1, 2, 7, 128, 1000, 1024])
def test_matches_math_comb_for_every_c_and_k(n):
    cs = sorted({0, 1, 2, n // 3, n // 2, n - 1, n} & set(range(n + 1)))
    ks = ks_up_to(n)
    got = pass_at_k([n] * len(cs), cs, ks)
    for r, c in enumerate(cs):
        for j, k in enumerate(ks):
            want = exact(n, c, k)
            assert got[r, j] == pytest.approx(float(want), rel=1e-12, abs=0)
            assert 1 - got[r, j] == pytest.approx(float(1 - want), rel=1e-9, abs=1e-15)


def test_tasks_with_different_n_in_one_call():
    got = pass_at_k([4, 10, 3], [1, 0, 3], [1, 2, 3])
    want = [[float(exact(n, c, k)) for k in (1, 2, 3)] for n, c in [(4, 1), (10, 0), (3, 3)]]
    np.testing.assert_allclose(got, want, rtol=1e-12)


def test_known_values():
    assert pass_at_k([10], [5], [1])[0, 0] == pytest.approx(0.5)
    assert pass_at_k([10], [0], [10])[0, 0] == 0.0
    assert pass_at_k([10], [1], [10])[0, 0] == 1.0
    assert mean_pass_at_k([2, 2], [0, 2], [1, 2]) == {1: 0.5, 2: 0.5}


def test_k_greater_than_n_is_an_error():
    with pytest.raises(ValueError, match="k=8 exceeds the n=4 samples of task 1"):
        pass_at_k([8, 4], [0, 0], [1, 8])


@pytest.mark.parametrize("c", [-1, 5])
def test_correct_count_outside_range_is_an_error(c):
    with pytest.raises(ValueError, match="outside 0..n=4"):
        pass_at_k([4], [c], [1])


def test_reported_ks():
    assert ks_up_to(1) == [1]
    assert ks_up_to(16) == [1, 2, 4, 8, 16]
    assert ks_up_to(128) == [1, 2, 4, 8, 16, 32, 64, 128]
    assert ks_up_to(10) == [1, 2, 4, 8, 10]
