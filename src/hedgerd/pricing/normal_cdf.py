"""Standard normal CDF from a table and a short Taylor series, for the Greeks book's tick
path and the Black-76 kernel (`hedgerd.pricing.black`).

``scipy.special.ndtr`` costs 10-20 ns per element (a scalar erfc each), which was most of a
`GreeksBook` tick. The book already computes ``e = exp(-x²/2)`` for gamma and vega, so here
``N(x)`` is the tabulated ``N(x0)`` at the nearest grid point ``x0 = j / GRID`` plus the
integral of the density from ``x0`` to ``x``, expanded at ``x``::

    N(x) = N(x0) + e Q,   Q = (h + x h²/2 + (x² - 1) h³/6) / sqrt(2 pi),   h = x - x0

with ``|h| <= 1/(2 GRID)`` and a remainder below ``max|n He₃| h⁴/24 < 6e-18``. Every step
is one numpy ufunc over the whole array (no per-element Python or scalar special function),
several times faster than ``ndtr`` at 10k elements. Work is in grid units ``u = GRID x``,
``hg = GRID h``; `split_grid` and `taylor_into` are the two halves, `ncdf_into` puts them
together (the book fuses them with its own products instead).

Accuracy: within 4e-16 of ``ndtr`` absolutely over the whole line (a few ulps of values
near 1; tested), relative error below 1e-13 for ``x >= -9``. Beyond ``|x| > 9`` the result
is ``N(±9)`` to within 1e-21, i.e. within ``N(-9) = 1.1e-19`` of the true value. Requires
finite ``|x| <= 2.7e11`` (`U_MAX`).
"""

from __future__ import annotations

import numpy as np
from numpy.typing import NDArray
from scipy.special import ndtr

from hedgerd.pricing import _kernel as _kl

FloatArray = NDArray[np.float64]

GRID: int = _kl.GRID
"""Table points per unit of x."""
X_MAX: float = _kl.X_MAX
"""The table covers [-X_MAX, X_MAX]; N(-9) = 1.1e-19."""
U_MAX = float(2**50)
"""Largest ``|u| = GRID |x|`` `split_grid` handles (``|x| <= 2.7e11``)."""

# The grid's constants live with the compiled kernel (`hedgerd.pricing._kernel`: one source
# file for its cache): _MAGIC rounds u to the integer j in the low mantissa bits, so the
# table index is the float's bit pattern minus a constant (two cheap passes instead of rint
# + cast); bit patterns of positive floats are monotone in the value, so indices out of the
# table's range stay out of it (clipped by `take`). Q = hg (_K1 + hg (_K2 u + hg (_K3 u² -
# _K3B))) in grid units.
_L = _kl.L
TABLE: FloatArray = ndtr(np.arange(-_L, _L + 1, dtype=np.float64) / GRID)
"""``N(j / GRID)`` at index ``j + X_MAX·GRID``."""
TABLE.flags.writeable = False
_MAGIC = _kl.MAGIC
_MAGIC_BITS = int(np.array(1.5 * 2.0**52).view(np.int64))
_K1, _K2, _K3, _K3B = _kl.K1, _kl.K2, _kl.K3, _kl.K3B


def split_grid(
    u: FloatArray, hg: FloatArray, idx: NDArray[np.int64], *, mirror: bool = False
) -> None:
    """``hg = u - j`` (``j`` the nearest integer, ``|hg| <= 1/2``) and ``idx`` = the table
    index of ``j`` (out of the table's range for ``|u| > X_MAX·GRID``: use ``take(mode=
    "clip")``). ``hg`` must not alias ``u``. With ``mirror``, ``idx`` is the index of ``-j``
    instead (``TABLE[idx] = N(-j/GRID)``, for the upper tail ``N(-x) = N(-x0) - e Q``)."""
    np.add(u, _MAGIC, out=hg)  # 1.5·2^52 + L + j
    if mirror:
        np.subtract(_MAGIC_BITS + 2 * _L, hg.view(np.int64), out=idx)  # L - j
    else:
        np.subtract(hg.view(np.int64), _MAGIC_BITS, out=idx)  # L + j
    np.subtract(hg, _MAGIC, out=hg)  # j, exact
    np.subtract(u, hg, out=hg)


def taylor_into(u: FloatArray, u2: FloatArray, hg: FloatArray, out: FloatArray) -> None:
    """``out = Q`` (see module docstring) from ``u``, ``u2 = u²`` and ``hg``; overwrites
    ``u`` (scaled). ``out`` must not alias the inputs."""
    np.multiply(u2, _K3, out=out)
    np.subtract(out, _K3B, out=out)
    np.multiply(out, hg, out=out)
    np.multiply(u, _K2, out=u)
    np.add(out, u, out=out)
    np.multiply(out, hg, out=out)
    np.add(out, _K1, out=out)
    np.multiply(out, hg, out=out)


def upper_tail_scalar(u: float, u2: float) -> tuple[float, float]:
    """``(N(-j/GRID), Q)`` for one ``u = GRID w`` (``|w| <= X_MAX``) and ``u2 = u²``, so that
    ``N(-w) = N(-j/GRID) - exp(-w²/2) Q``: `split_grid` (``mirror=True``), `TABLE` and
    `taylor_into` for one element, the same operations in the same order (bit-identical
    results): the compiled kernel's `hedgerd.pricing._kernel.upper_tail`, from Python."""
    t, q = _kl.upper_tail(TABLE, u, u2)
    return float(t), float(q)


def ncdf_into(
    x: FloatArray,
    out: FloatArray,
    u: FloatArray,
    u2: FloatArray,
    hg: FloatArray,
    idx: NDArray[np.int64],
) -> FloatArray:
    """``out = N(x)`` (dimensionless) for finite ``|x| <= 2.7e11``; ``u``, ``u2``, ``hg``
    (float) and ``idx`` (int64) are scratch of ``x``'s shape. Nothing is allocated.
    Elementwise: a slice of the inputs gives the same values."""
    np.multiply(x, GRID, out=u)
    np.multiply(u, u, out=u2)
    split_grid(u, hg, idx)
    taylor_into(u, u2, hg, out)
    np.multiply(u2, -0.5 / GRID**2, out=u2)
    np.exp(u2, out=u2)  # e = exp(-x²/2)
    np.multiply(out, u2, out=out)
    np.take(TABLE, idx, out=u2, mode="clip")
    np.add(out, u2, out=out)
    return out


def ncdf(x: FloatArray) -> FloatArray:
    """``N(x)`` of a finite float64 array (allocating; for tests and one-off use)."""
    xa = np.asarray(x, dtype=np.float64)
    out = np.empty_like(xa)
    return ncdf_into(
        xa,
        out,
        np.empty_like(xa),
        np.empty_like(xa),
        np.empty_like(xa),
        np.empty(xa.shape, np.int64),
    )
