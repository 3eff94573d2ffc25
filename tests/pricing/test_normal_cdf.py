"""The table-and-Taylor normal CDF (pricing and the Greeks book) against scipy's ``ndtr``."""

from __future__ import annotations

import numpy as np
from hypothesis import given, settings
from hypothesis import strategies as st
from scipy.special import ndtr

from hedgerd.pricing.normal_cdf import GRID, U_MAX, X_MAX, ncdf, ncdf_into, split_grid

ABS_TOL = 4e-16  # a few ulps of values near 1; ndtr itself is good to ~1 ulp


def test_matches_ndtr_on_a_dense_grid_and_in_the_lower_tail() -> None:
    # 1/GRID/7 steps: hits grid points, midpoints and everything between
    x = np.arange(-12.0, 12.0, 1.0 / GRID / 7)
    got, want = ncdf(x), ndtr(x)
    assert np.max(np.abs(got - want)) <= ABS_TOL
    tail = x >= -X_MAX
    assert np.max(np.abs(got[tail] - want[tail]) / want[tail]) <= 1e-13
    # beyond the table: N(±X_MAX), within N(-9) = 1.1e-19 of the truth
    far = np.abs(x) > X_MAX
    assert np.max(np.abs(got[far] - want[far])) <= 1.2e-19


def test_extremes_saturate_without_nan() -> None:
    x = np.array([-U_MAX / GRID, -1e9, -40.0, -0.0, 0.0, 40.0, 1e9, U_MAX / GRID])
    got = ncdf(x)
    assert np.all(np.isfinite(got))
    np.testing.assert_allclose(got, ndtr(x), rtol=0, atol=1.2e-19)
    assert got[3] == got[4] == 0.5


@settings(max_examples=300, deadline=None, derandomize=True)
@given(st.lists(st.floats(-U_MAX / GRID, U_MAX / GRID), min_size=1, max_size=50))
def test_any_finite_input_within_range(xs: list[float]) -> None:
    x = np.array(xs)
    assert np.max(np.abs(ncdf(x) - ndtr(x))) <= ABS_TOL


def test_elementwise_so_slices_and_shapes_agree() -> None:
    rng = np.random.default_rng(0)
    x = rng.normal(0.0, 4.0, (2, 1000))
    whole = ncdf(x)
    buf = [np.empty((2, 1000)) for _ in range(4)]
    idx = np.empty((2, 1000), np.int64)
    for lo, hi in ((0, 317), (317, 1000)):
        part = ncdf_into(
            x[:, lo:hi],
            buf[0][:, lo:hi],
            buf[1][:, lo:hi],
            buf[2][:, lo:hi],
            buf[3][:, lo:hi],
            idx[:, lo:hi],
        )
        np.testing.assert_array_equal(part, whole[:, lo:hi])


def test_split_grid_rounds_to_the_nearest_grid_point() -> None:
    u = np.array([-2.5, -0.5, -0.49, 0.0, 0.49, 0.5, 1.5, 1234.75, -36864.0, 36864.0])
    hg = np.empty_like(u)
    idx = np.empty(u.shape, np.int64)
    split_grid(u, hg, idx)
    j = u - hg
    np.testing.assert_array_equal(j, np.rint(u))  # ties to even, like rint
    assert np.all(np.abs(hg) <= 0.5)
    np.testing.assert_array_equal(idx, np.rint(u).astype(np.int64) + int(X_MAX * GRID))
