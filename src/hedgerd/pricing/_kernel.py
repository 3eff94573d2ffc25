"""The compiled Black-76 kernel (numba): price and six Greeks of one option per loop step, in
one pass over the inputs, for `hedgerd.pricing.black` (conventions, accuracy and the bad
input policy are documented there).

Everything the machine code depends on is in this file: numba's on-disk cache is keyed on
the source file of the compiled function (its path, size and modification time), not on
modules it calls or globals it reads, so a constant or helper kept in another module could
change without invalidating a stale cache. `hedgerd.pricing.normal_cdf` takes its grid
constants from here; its table is passed in as an argument (computed at import, never
frozen into cached code).

Compilation (`_JIT`): ``cache=True`` keeps the machine code in ``__pycache__`` next to this
file (numba's default: writable in a checkout or an editable install; else the user's
``~/.cache/numba``; ``NUMBA_CACHE_DIR`` overrides both), so the first process on a machine
compiles at its first call (1-3 s) and later ones load it (~0.2 s); processes compiling at
once (pytest-xdist workers on a fresh clone) each write it, numba replaces the files
atomically. With no writable place at all, `_compiled` compiles in each process instead.
``fastmath=False``, which also leaves multiplies and adds unfused: IEEE double arithmetic in
source order. ``error_model="numpy"``: a division by zero gives inf/NaN instead of raising.
``nogil``: pool threads run chunks in parallel. ``erfc`` and ``erfcx`` are scipy's own
(``scipy.special.cython_special``), called through symbols registered with LLVM at import,
so cached code holds no addresses and results are ``scipy.special``'s bit for bit.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from typing import Any, TypeVar, cast

import llvmlite.binding as _llvm
import numpy as np
from numba import njit
from numba import types as _types
from numba.core.extending import get_cython_function_address
from numpy.typing import NDArray

FloatArray = NDArray[np.float64]

_JIT: dict[str, Any] = {"cache": True, "fastmath": False, "nogil": True, "error_model": "numpy"}
_F = TypeVar("_F", bound=Callable[..., Any])
UNCACHED: list[str] = []
"""Functions compiled without the on-disk cache (`_compiled`): empty where numba found one."""


def _compiled(fn: _F) -> _F:
    """``numba.njit(**_JIT)``, typed for mypy. Where numba finds no writable cache directory
    (a read-only install, no writable home, no ``NUMBA_CACHE_DIR``) it would raise at import:
    the function is then compiled in each process instead (seconds at the first call)."""
    try:
        return cast(_F, njit(**_JIT)(fn))
    except RuntimeError as exc:  # "cannot cache function ...: no locator available ..."
        if "no locator available" not in str(exc):
            raise
        UNCACHED.append(fn.__name__)
        return cast(_F, njit(**{**_JIT, "cache": False})(fn))


def _scipy_unary(name: str) -> Any:
    """scipy.special's double ``name(double)`` as a function of compiled code (``f(x, 0)``:
    the second argument is Cython's ``skip_dispatch``)."""
    symbol = f"hedgerd_scipy_{name}"
    fused = f"__pyx_fuse_1{name}"  # the double (not complex) specialisation
    _llvm.add_symbol(symbol, get_cython_function_address("scipy.special.cython_special", fused))
    return _types.ExternalFunction(symbol, _types.float64(_types.float64, _types.intc))


_erfc = _scipy_unary("erfc")
_erfcx = _scipy_unary("erfcx")

# The normal CDF table's grid (`hedgerd.pricing.normal_cdf` documents and re-exports these).
GRID = 4096
X_MAX = 9.0
L = int(X_MAX * GRID)
# Adding 1.5·2^52 rounds u to an integer (ulp 1 in [2^52, 2^53)) and leaves it in the low
# mantissa bits, so the table index is the float's bit pattern minus a constant: two cheap
# passes instead of rint + cast. Bit patterns of positive floats are monotone in the value,
# so indices out of the table's range stay out of it (clipped by `take`).
MAGIC = 1.5 * 2.0**52 + L
_ISQ = 1.0 / math.sqrt(2.0 * math.pi)
# Q = hg (K1 + hg (K2 u + hg (K3 u² - K3B))) in grid units
K1 = _ISQ / GRID
K2 = _ISQ / (2.0 * GRID**3)
K3 = _ISQ / (6.0 * GRID**5)
K3B = _ISQ / (6.0 * GRID**3)

_INV_SQRT_2PI = 1.0 / math.sqrt(2.0 * math.pi)
_INV_SQRT2 = 1.0 / math.sqrt(2.0)
# OTM prices with q^3 / v above this (q = |ln(F/K)|/v, v = vol sqrt(tau)) go through the
# erfcx formula: the naive one's relative error is about eps q^3 / v (rounding in d1 and d2,
# amplified by the cancellation), so it stays below ~1e-12.
_CANCEL_LIMIT = 1.0e4
# ... and so do all with q = |ln(F/K)|/v > (_CANCEL_LIMIT * _V_CAP)^(1/3) = 25 (underflow).
_V_CAP = 25.0**3 / _CANCEL_LIMIT
# Options with max |d| = |ln(F/K)|/v + v/2 above this take scipy's erfc for N(so d1), N(so d2)
# instead of the table (whose Taylor remainder, relative, grows like |d|^4).
_TABLE_D_MAX = 6.0
_U_SAFE = 2.0**50  # |u| up to which the table index int(u) is exact and far from overflow


@_compiled
def upper_tail(table: FloatArray, u: float, u2: float) -> tuple[float, float]:
    """``(N(-j/GRID), Q)`` for one ``u = GRID w`` (``|w| <= X_MAX``) and ``u2 = u²``, so that
    ``N(-w) = N(-j/GRID) - exp(-w²/2) Q``: `normal_cdf.split_grid` (``mirror=True``), the
    ``table`` (`normal_cdf.TABLE`) and `normal_cdf.taylor_into` for one element, the same
    operations in the same order (bit-identical results)."""
    hg = u + MAGIC
    j = hg - MAGIC
    hg = u - j
    q = u2 * K3
    q = q - K3B
    q = q * hg
    q = q + u * K2
    q = q * hg
    q = q + K1
    q = q * hg
    return table[min(max(L - int(j), 0), 2 * L)], q


@_compiled
def _exponent(xk: float, T: float, V: float) -> float:
    """``-d1^2/2`` from ``xk = ln(K/F)``, the argument of the one ``exp`` per option (the
    density; the normal CDFs reuse it), computed as `_option` computes ``d1``."""
    v = V * math.sqrt(T)
    u1 = math.copysign(GRID, xk) * (xk / v + v * -0.5)
    return (u1 * u1) * (-0.5 / GRID**2)


@_compiled
def _maybe_special(F: float, K: float, T: float, V: float, D: float, g: float, v: float) -> bool:
    """False only for an option the table path prices exactly as `_option` does: valid and
    unexpired inputs (positive, and finite: a sum of positives is; NaN fails every
    comparison), not a far wing (`_far`), no cancellation (`_cancels`, here without its
    division and with a margin, so it errs towards True). No branches, two compares fewer
    than the exact tests: the loop's cost for a desk's book."""
    ok = (F > 0) & (K > 0) & (T > 0) & (V > 0) & (D > 0) & math.isfinite(F + K + T + V + D)
    q = abs(g)
    far = q + 0.5 * v > _TABLE_D_MAX
    cancels = q * q * q > (_CANCEL_LIMIT * (1.0 - 1e-9)) * min(v, _V_CAP)
    return (not ok) | far | cancels


@_compiled
def _far(g: float, v: float) -> bool:
    """``max |d| = |g| + v/2`` beyond the table's accurate range: erfc instead."""
    return abs(g) + 0.5 * v > _TABLE_D_MAX


@_compiled
def _cancels(g: float, v: float) -> bool:
    """The OTM price formula cancels or underflows (``q^3 / min(v, _V_CAP) > _CANCEL_LIMIT``
    with ``q = |g|``): erfcx instead."""
    q = abs(g)
    return q / min(v, _V_CAP) * q * q > _CANCEL_LIMIT


@_compiled
def _table_cdfs(
    table: FloatArray, F: float, K: float, e: float, u1: float, u2: float
) -> tuple[float, float]:
    """``N(so d1)`` and the OTM-side price ``F N(so d1) - K N(so d2)`` from the table, with
    ``u = GRID w``, ``w = -so d`` (``N(so d) = N(-w)``) and ``e = exp(-d1^2/2)``. A NaN or
    huge ``u`` (a special option, recomputed by `_option`) reads the table at ``u = 0``, so
    the float-to-int conversion of the index is always in range."""
    u1 = u1 if abs(u1) <= _U_SAFE else 0.0
    u2 = u2 if abs(u2) <= _U_SAFE else 0.0
    T1, Q1 = upper_tail(table, u1, u1 * u1)
    N1 = T1 - Q1 * e
    T2, Q2 = upper_tail(table, u2, u2 * u2)
    return N1, F * (N1 + Q2 * e) - T2 * K  # N(so d2) = T2 - e2 Q2 and K e2 = F e


@_compiled
def _greeks(
    call: bool, F: float, K: float, T: float, V: float, D: float,
    xk: float, e: float, lnD: float, N1: float, P: float,
) -> tuple[float, float, float, float, float, float, float]:  # fmt: skip
    """The seven outputs from the OTM side's ``N1 = N(so d1)`` and price ``P``: the intrinsic
    value added in the money (no cancellation), the discount, the Greeks from the density."""
    sq = math.sqrt(T)
    v = V * sq
    g = xk / v
    nh = v * -0.5
    m1 = g + nh  # -d1
    m2 = g - nh  # -d2
    so = math.copysign(GRID, xk) * (1.0 / GRID)  # +-1, exact
    if call != (xk >= 0):  # in the money
        N1 -= 1.0
        P += K - F
    delta = so * N1
    price = P * so
    n = e * _INV_SQRT_2PI  # the (discounted) density D n(d1)
    if D != 1.0:
        n *= D
        price *= D
        delta *= D
    Fn = n * F
    gamma = n / (F * v)
    vega = Fn * sq
    r2 = m2 / V  # -d2 / vol
    vanna = n * r2
    volga = vega * m1 * r2  # vega d1 d2 / vol
    # theta = -D F n(d1) v / (2 tau) + r price, r = -ln(D)/tau (D moves with tau at fixed r)
    theta = Fn * nh
    if D != 1.0:
        theta -= lnD * price
    theta /= T
    return price, delta, gamma, vega, theta, vanna, volga


@_compiled
def _option(
    table: FloatArray, call: bool, F: float, K: float, T: float, V: float, D: float,
    xk: float, e: float, lnD: float,
) -> tuple[float, float, float, float, float, float, float]:  # fmt: skip
    """Price, delta, gamma, vega, theta, vanna, volga of one option (NaN for bad input, the
    intrinsic value and step delta at expiry), given its transcendentals ``xk = ln(K/F)``,
    ``e = exp(_exponent(xk, T, V))`` and ``lnD = ln(D)``. ``table`` is `normal_cdf.TABLE`.

    The price is computed on the out-of-the-money side ``so`` (a call when F <= K, a put
    otherwise) plus the intrinsic value, so an in-the-money price carries an absolute error
    of a few ulps of itself (not of F), and an out-of-the-money one a relative error.
    ``N(so d1)``, ``N(so d2)`` come from the table and Taylor series (`upper_tail`), which
    reuse the density's ``exp`` (``K n(d2) = F n(d1)``), while ``|d| <= _TABLE_D_MAX``; far
    wings take scipy's ``erfc``, and out-of-the-money prices whose formula would cancel or
    underflow scipy's ``erfcx``.
    """
    valid = math.isfinite(F) and math.isfinite(K) and math.isfinite(T) and math.isfinite(V)
    valid = valid and math.isfinite(D) and F > 0 and K > 0 and D > 0 and T >= 0
    if not (valid and (V > 0 or (T == 0 and V == 0))):
        nan = math.nan
        return nan, nan, nan, nan, nan, nan, nan
    if T == 0:
        s = 1.0 if call else -1.0
        itm = s * (F - K)
        step = 1.0 if itm > 0 else (0.5 if itm == 0 else 0.0)
        return D * max(itm, 0.0), D * s * step, 0.0, 0.0, 0.0, 0.0, 0.0
    v = V * math.sqrt(T)  # total standard deviation
    g = xk / v  # -x/v, x = ln(F/K)
    m1 = g + v * -0.5  # -d1
    m2 = g - v * -0.5  # -d2
    # OTM side so = +1 (call) when F <= K, -1 (put) when F > K; in grid units (GRID a power
    # of 2: exact) u = GRID w with w = -so d, and N(so d) = N(-w)
    so_g = math.copysign(GRID, xk)
    so = so_g * (1.0 / GRID)
    if _far(g, v):
        N1 = 0.5 * _erfc(so * m1 * _INV_SQRT2, 0)
        N2 = 0.5 * _erfc(so * m2 * _INV_SQRT2, 0)
        P = F * N1 - K * N2
    else:
        N1, P = _table_cdfs(table, F, K, e, so_g * m1, so_g * m2)
    if _cancels(g, v):
        # far OTM at short expiry P cancels: with q = |g|, t = v/2, so P =
        # F exp(-d1^2/2) (erfcx((q - t)/sqrt2) - erfcx((q + t)/sqrt2)) / 2, relative error
        # eps q / v instead of eps q^3 / v; lo <= 0 only for v > ~40, where it is mild
        q = abs(g)
        t = 0.5 * v
        lo = (q - t) * _INV_SQRT2
        if lo > 0:
            hi = (q + t) * _INV_SQRT2
            P = so * (0.5 * (F * e) * (_erfcx(lo, 0) - _erfcx(hi, 0)))
    return _greeks(call, F, K, T, V, D, xk, e, lnD, N1, P)


@_compiled
def black76_one(
    table: FloatArray, call: bool, F: float, K: float, T: float, V: float, D: float
) -> tuple[float, float, float, float, float, float, float]:
    """`_option` of one option with libm's ``log`` and ``exp`` (Python's ``math``): no numpy
    call overhead. They may differ from numpy's vectorised ones by an ulp."""
    xk = math.log(K / F)
    return _option(table, call, F, K, T, V, D, xk, math.exp(_exponent(xk, T, V)), math.log(D))


@_compiled
def exponents(xk: FloatArray, T: FloatArray, V: FloatArray, out: FloatArray) -> None:
    """``out = _exponent(xk, T, V)`` element by element (1-D arrays of one length)."""
    for j in range(out.shape[0]):
        out[j] = _exponent(xk[j], T[j], V[j])


@_compiled
def black76_range(
    table: FloatArray,
    call: NDArray[np.bool_],
    F: FloatArray,
    K: FloatArray,
    T: FloatArray,
    V: FloatArray,
    D: FloatArray,
    xk: FloatArray,
    e: FloatArray,
    lnD: FloatArray,
    out: tuple[FloatArray, ...],
) -> None:
    """`_option` of each element into the seven ``out`` arrays (all 1-D of one length), given
    the vectorised transcendentals ``xk = ln(K/F)``, ``e = exp(_exponent(xk, T, V))`` and
    ``lnD = ln(D)``.

    For a desk's options (valid, unexpired, table range, no cancellation) the loop body has
    no branch that is ever taken: it computes the table path and the outputs, and redoes an
    option with the full `_option` only where the branch-free `_maybe_special` says so; the
    values are `_option`'s (the same operations in the same order)."""
    price, delta, gamma, vega, theta, vanna, volga = out
    for j in range(price.shape[0]):
        c, f, k, t, vol, d = call[j], F[j], K[j], T[j], V[j], D[j]
        x, ee, ld = xk[j], e[j], lnD[j]
        v = vol * math.sqrt(t)
        g = x / v
        so_g = math.copysign(GRID, x)
        N1, P = _table_cdfs(table, f, k, ee, so_g * (g + v * -0.5), so_g * (g - v * -0.5))
        r = _greeks(c, f, k, t, vol, d, x, ee, ld, N1, P)
        if _maybe_special(f, k, t, vol, d, g, v):
            r = _option(table, c, f, k, t, vol, d, x, ee, ld)
        price[j], delta[j], gamma[j], vega[j], theta[j], vanna[j], volga[j] = r
