"""The Black-76 kernel's normal CDFs from the `normal_cdf` table (instead of scipy's erfc),
its in-kernel input checks and the one-block output allocation."""

from __future__ import annotations

import math

import numpy as np
import pytest
from _pricing_reference import exact_black76
from scipy.special import ndtr
from test_black76 import NAMES, random_grid, scale

from hedgerd.pricing import Greeks, black76, black76_into
from hedgerd.pricing.normal_cdf import GRID, TABLE, split_grid, taylor_into, upper_tail_scalar

EPS = float(np.finfo(np.float64).eps)


def test_matches_exact_reference_to_1e12_times_the_conditioning() -> None:
    # deep ITM and OTM (|h| <= 8 sd, and some far wings up to 14 sd: erfc path), expiries down
    # to a minute, vols 10..300 %, a discount per option. The tolerance is 1e-12 relative
    # where the problem is well conditioned, growing with its conditioning (1 + q)(1 + q/v)
    # (q = |ln(F/K)|/v, v = vol sqrt(tau)): the rounding of ln(F/K) alone moves a far-wing
    # short-expiry price by eps q/v relative.
    grid = random_grid(360, seed=2026, h_max=8.0)
    wings = random_grid(40, seed=2027, h_max=14.0)
    keys = ("is_call", "F", "K", "tau", "vol", "D")
    call, F, K, tau, vol, D = (np.concatenate([grid[k], wings[k]]) for k in keys)
    n = call.size
    g = black76(call, F, K, tau, vol, D)
    for i in range(n):
        args = (bool(call[i]), float(F[i]), float(K[i]), float(tau[i]), float(vol[i]), float(D[i]))
        ref = exact_black76(*args)
        if ref["price"] < 1e-280 * args[1]:
            continue
        v = args[4] * math.sqrt(args[3])
        q = abs(math.log(args[1] / args[2])) / v
        tol = 1e-12 + 8 * EPS * (1 + q) * (1 + q / v)
        for name in NAMES:
            want = ref[name]
            floor = scale(name, ref, args[1], args[3], args[4], args[5])
            err = abs(float(getattr(g, name)[i]) - want) / max(abs(want), floor, 1e-300)
            assert err <= tol, (name, args, err, tol)


def test_desk_inputs_match_the_exact_reference_to_1e12() -> None:
    # the benchmark's book: expiries 1 day..1 year, vols 30..120 %, strikes within 4 sd
    rng = np.random.default_rng(7)
    n = 300
    F = 60_000.0 * np.exp(rng.normal(0.0, 0.01, n))
    tau = np.exp(rng.uniform(math.log(1 / 365), 0.0, n))
    vol = rng.uniform(0.3, 1.2, n)
    K = F * np.exp(rng.uniform(-4.0, 4.0, n) * vol * np.sqrt(tau))
    D = np.exp(-rng.uniform(0.0, 0.1, n) * tau)
    call = rng.random(n) < 0.5
    g = black76(call, F, K, tau, vol, D)
    for i in range(n):
        args = (bool(call[i]), float(F[i]), float(K[i]), float(tau[i]), float(vol[i]), float(D[i]))
        ref = exact_black76(*args)
        for name in NAMES:
            floor = scale(name, ref, args[1], args[3], args[4], args[5])
            err = abs(float(getattr(g, name)[i]) - ref[name]) / max(abs(ref[name]), floor)
            assert err <= 1e-12, (name, args, err)


def test_mirrored_table_gives_the_upper_tail() -> None:
    # N(-w) = TABLE[mirror index] - exp(-w^2/2) Q(w), for w over the kernel's range
    rand = np.random.default_rng(1).uniform(-3.0, 6.0, 5000)
    w = np.concatenate([np.linspace(-3.0, 6.0, 20_001), rand])
    u = w * GRID
    uu = u * u
    hg = np.empty_like(u)
    idx = np.empty(u.shape, np.int64)
    split_grid(u, hg, idx, mirror=True)
    j = u - hg
    np.testing.assert_array_equal(TABLE[idx], ndtr(-j / GRID))
    q = np.empty_like(u)
    taylor_into(u.copy(), uu, hg, q)
    got = TABLE[idx] - np.exp(-0.5 * w * w) * q
    want = ndtr(-w)
    assert np.max(np.abs(got - want) / want) < 2e-14  # ndtr itself: ~1e-14 at w = 6
    # the one-option version is the same arithmetic, bit for bit
    for k in range(0, w.size, 97):
        t, qs = upper_tail_scalar(float(u[k]), float(uu[k]))
        assert t == TABLE[idx[k]] and qs == q[k]


def test_greeks_empty_is_one_block_of_views_also_when_0d() -> None:
    for shape in ((), (5,), (2, 3)):
        out = Greeks.empty(shape)
        arrays = out.arrays()
        assert all(a.shape == shape and a.flags.c_contiguous for a in arrays)
        assert all(isinstance(a, np.ndarray) for a in arrays)
        assert len({a.base is not None and id(a.base) for a in arrays}) == 1
        res = black76_into(out, True, 100.0, np.full(shape, 110.0), 0.5, 0.6, 0.99)
        want = black76(True, 100.0, 110.0, 0.5, 0.6, 0.99)
        for a, b in zip(res.arrays(), want.arrays(), strict=True):
            np.testing.assert_array_equal(a, np.broadcast_to(b, shape))


@pytest.mark.parametrize("bad", ["F", "K", "tau", "vol", "D"])
def test_a_bad_input_leaves_its_neighbours_alone(bad: str) -> None:
    # the kernel checks inputs by chunk reductions; a bad element (and every bad kind: NaN,
    # zero, negative, infinite) is NaN, and its chunk's other options, including far wings
    # and cancellation repairs, are exactly what they are without it
    rng = np.random.default_rng(3)
    n = 64
    inp = {
        "F": np.full(n, 5000.0),
        "K": 5000.0 * np.exp(rng.uniform(-12.0, 12.0, n) * 0.01),
        "tau": np.full(n, 1e-4),
        "vol": np.full(n, 1.0),
        "D": rng.uniform(0.9, 1.0, n),
    }
    call = rng.random(n) < 0.5
    keys = ("F", "K", "tau", "vol", "D")
    clean = black76(call, *(inp[k] for k in keys))
    for value in (math.nan, 0.0, -1.0, math.inf):
        dirty = {k: a.copy() for k, a in inp.items()}
        dirty[bad][7] = value
        if bad == "F":  # a negative forward with a negative strike: ln(K/F) is finite
            dirty["K"][7] = -abs(dirty["K"][7]) if value == -1.0 else dirty["K"][7]
        g = black76(call, *(dirty[k] for k in keys))
        expired = bad == "tau" and value == 0.0  # not bad: priced at expiry
        for name in NAMES:
            got, want = getattr(g, name), getattr(clean, name)
            assert expired or math.isnan(got[7]), (name, value)
            np.testing.assert_array_equal(np.delete(got, 7), np.delete(want, 7))
