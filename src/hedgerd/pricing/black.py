"""Vectorised Black-76 and Black-Scholes prices and Greeks.

Conventions (all inputs broadcast against each other, numpy float64 throughout):

- ``forward`` and ``strike`` in the same price unit (USD per coin for crypto); ``price`` comes
  back in that unit. ``tau`` is time to expiry in years, ``vol`` is annualised (0.5 = 50 %).
- ``discount`` is the discount factor ``D = exp(-r * tau)`` to the payment date. Use 1.0 for
  undiscounted prices (inverse options priced in coin on a forward, or zero rate).
- ``price = D * Black(F, K, tau, vol)``.
- ``delta = dprice/dF``, ``gamma = d2price/dF2``, ``vega = dprice/dvol`` per 1.00 of vol,
  ``vanna = d2price/dF dvol``, ``volga = d2price/dvol2``: all at fixed ``D``.
- ``theta = dprice/dt`` per year of calendar time ``t`` (``tau = T - t``) with the forward ``F``
  and the continuously compounded rate ``r = -ln(D) / tau`` held fixed, so ``D`` moves with
  ``tau``::

      theta = -D * F * n(d1) * vol / (2 sqrt(tau)) + r * price,   r = -ln(D) / tau

  It is negative for a long option at zero rate (``D == 1``). (``-dprice/dtau`` with ``D`` held
  constant is just the first term.)
- ``black_scholes`` gives the same Greeks with respect to spot ``S`` (forward
  ``F = S exp((rate - div) tau)``, ``D = exp(-rate tau)``), theta at fixed spot, rate and div.

Bad input policy (never an exception for array input, never silent garbage):

- Any NaN or infinite input, a forward, strike, discount or vol that is zero or negative, or
  a negative tau gives NaN in every output for that element. ``pricing_reason`` returns the
  per-element ``Reason`` (``BAD_INPUT``) without pricing.
- Valid inputs give finite outputs across any desk-relevant range (tested for forward and
  strike 1e-10..1e10, tau 1e-10..1e10 years, vol 1e-8..1e3); only float64 overflow or
  underflow of intermediates (a forward of 1e-308, vol sqrt(tau) of 1e150) can give inf or
  NaN there, never an exception.
- ``tau == 0`` exactly is expiry, not an error (``Reason.EXPIRED``): price is the discounted
  intrinsic value ``D * max(theta_sign * (F - K), 0)``, delta is the step ``D * 1`` in the
  money, ``0`` out of the money and ``D * 0.5`` (call) / ``-D * 0.5`` (put) exactly at the
  money (the limit of the continuous-time delta), and gamma, vega, theta, vanna and volga are
  0. At expiry vol may be 0 (still not NaN or negative).

Accuracy (tested against a 60-digit reference to 1e-10 relative; typically ~1e-13, worst
~4e-11 at one-minute expiries in the far wings, which is the problem's own conditioning
``eps |ln(F/K)| / (vol sqrt(tau))^2``): the price is computed on the out-of-the-money side
(a call when F <= K, a put otherwise) as ``so (F N(so d1) - K N(so d2))`` plus the intrinsic
value, so an in-the-money price carries an error of a few ulps of itself, not of F, and
implied vol can be recovered from it. Out-of-the-money prices whose formula would cancel or
underflow (``q = |ln(F/K)| / (vol sqrt(tau))``: ``q^3 / (vol sqrt(tau)) > 1e4`` or ``q > 25``,
i.e. far wings at short expiry and astronomically far strikes) are recomputed from the
scaled complementary error function. Delta uses ``N(so d1)`` directly (no ``1 - N`` in the
tail); gamma, vega, theta, vanna and volga use ``n(d1)``. ``N`` comes from the table and
Taylor series of ``hedgerd.pricing.normal_cdf``, which reuses the density's ``exp``; for
``|d| <= 6`` its relative error in the lower tail (below 1e-14) is that of scipy's ``erfc``
(both are limited by the conditioning ``d^2 eps`` of ``exp(-d^2/2)``); options with ``|d| > 6``
(far wings) take ``erfc``.

Speed: ``black76_into`` runs the kernel in cache-sized chunks with preallocated work arrays
(the outputs double as work space; array inputs are checked by chunk reductions inside the
kernel) and splits large books over a small thread pool (numpy and scipy release the GIL);
``set_threads`` tunes it. ``scripts/bench_greeks.py`` prints the figures, and its ``numpy``
section the ratio to a plain numpy implementation on the same inputs (docs/architecture.md,
"Pricing speed").
"""

from __future__ import annotations

import itertools
import math
import os
import threading
from dataclasses import dataclass
from typing import Any

import numpy as np
from numpy.typing import ArrayLike, NDArray
from scipy import special as _sp

from hedgerd.pricing.normal_cdf import GRID, TABLE, split_grid, taylor_into, upper_tail_scalar
from hedgerd.pricing.reasons import REASON_DTYPE, Reason
from hedgerd.pricing.threads import WorkerPool

FloatArray = NDArray[np.float64]

_INV_SQRT_2PI = 1.0 / math.sqrt(2.0 * math.pi)
_INV_SQRT2 = 1.0 / math.sqrt(2.0)
_SQRT_2PI = math.sqrt(2.0 * math.pi)
# OTM prices with q^3 / v above this (q = |ln(F/K)|/v, v = vol sqrt(tau)) go through the
# erfcx formula: the naive one's relative error is about eps q^3 / v (rounding in d1 and d2,
# amplified by the cancellation), so it stays below ~1e-12.
_CANCEL_LIMIT = 1.0e4
# ... and so do all with q = |ln(F/K)|/v > (_CANCEL_LIMIT * _V_CAP)^(1/3) = 25 (underflow).
_V_CAP = 25.0**3 / _CANCEL_LIMIT
# Options with max |d| = |ln(F/K)|/v + v/2 above this take scipy's erfc for N(so d1), N(so d2)
# instead of the table (whose Taylor remainder, relative, grows like |d|^4).
_TABLE_D_MAX = 6.0

_SCALARS = (float, int, np.floating, np.integer, np.bool_)  # bool is an int
_GREEK_NAMES = ("price", "delta", "gamma", "vega", "theta", "vanna", "volga")


@dataclass(frozen=True, slots=True)
class Greeks:
    """Price and Greeks, each a float64 array of the broadcast input shape.

    Units: ``price`` in the forward's price unit; ``delta`` per unit of forward (spot for
    ``black_scholes``); ``gamma`` per unit squared; ``vega``, ``vanna`` per 1.00 of vol;
    ``volga`` per 1.00 of vol squared; ``theta`` per year. See the module docstring.
    """

    price: FloatArray
    delta: FloatArray
    gamma: FloatArray
    vega: FloatArray
    theta: FloatArray
    vanna: FloatArray
    volga: FloatArray

    @classmethod
    def empty(cls, shape: int | tuple[int, ...]) -> Greeks:
        """Preallocated (uninitialised) buffers, for ``black76_into``: the seven arrays are the
        rows of one block, so a large book's outputs come in one allocation (numpy asks for
        huge pages from 4 MiB: a few page faults instead of one per 4 KiB of output)."""
        dims = (shape,) if isinstance(shape, int) else tuple(shape)
        block = np.empty((len(_GREEK_NAMES), *dims), dtype=np.float64)
        return cls(*(block[i, ...] for i in range(len(_GREEK_NAMES))))  # views, also when 0-d

    def arrays(self) -> tuple[FloatArray, ...]:
        """The seven arrays in field order (price, delta, gamma, vega, theta, vanna, volga)."""
        return (self.price, self.delta, self.gamma, self.vega, self.theta, self.vanna, self.volga)


def _as_f64(x: ArrayLike) -> FloatArray:
    return np.asarray(x, dtype=np.float64)


def pricing_reason(
    forward: ArrayLike,
    strike: ArrayLike,
    tau: ArrayLike,
    vol: ArrayLike,
    discount: ArrayLike = 1.0,
) -> NDArray[np.int8]:
    """Per-element ``Reason`` for ``black76`` inputs: ``OK``, ``BAD_INPUT`` or ``EXPIRED``.

    Broadcasts like ``black76``; returns an int8 array of the broadcast shape.
    """
    F, K, T, V, D = (_as_f64(a) for a in (forward, strike, tau, vol, discount))
    with np.errstate(invalid="ignore"):
        good = (
            np.isfinite(F)
            & (F > 0)
            & np.isfinite(K)
            & (K > 0)
            & np.isfinite(D)
            & (D > 0)
            & np.isfinite(T)
            & (T >= 0)
            & np.isfinite(V)
            & ((V > 0) | ((T == 0) & (V == 0)))
        )
        expired = good & (T == 0)
    reason = np.where(good, np.int8(Reason.OK), np.int8(Reason.BAD_INPUT)).astype(REASON_DTYPE)
    reason[expired] = Reason.EXPIRED
    return reason


def _all_valid(*arrays: FloatArray) -> bool:
    """Fast check (min/max reductions) that every element is finite, positive, not expired."""
    for a in arrays:
        if a.size == 0:
            continue
        lo = a.min()
        hi = a.max()
        if not (lo > 0.0 and hi < math.inf):  # NaN fails both comparisons
            return False
    return True


class _Scratch:
    """Per-thread work arrays for one chunk (no temporaries allocated per ufunc). The kernel
    also uses its output arrays as work space before their final values, so that one chunk's
    working set (with the CDF table) stays within a core's L2 cache."""

    __slots__ = ("T2", "e", "g", "hg", "idx", "itm", "mask", "q1", "q2", "so", "u")
    T2: FloatArray
    e: FloatArray
    g: FloatArray
    hg: FloatArray
    idx: NDArray[np.int64]
    itm: NDArray[np.bool_]
    mask: NDArray[np.bool_]
    q1: FloatArray
    q2: FloatArray
    so: FloatArray
    u: FloatArray

    def __init__(self, n: int) -> None:
        dtypes = {"mask": np.bool_, "itm": np.bool_, "idx": np.int64}
        for name in self.__slots__:
            setattr(self, name, np.empty(n, dtype=dtypes.get(name, np.float64)))

    @property
    def n(self) -> int:
        return int(self.g.shape[0])

    def view(self, n: int) -> _Scratch:
        out = object.__new__(_Scratch)
        for name in self.__slots__:
            setattr(out, name, getattr(self, name)[:n])
        return out


# u^2 = (GRID w)^2 bound for the table (|w| <= _TABLE_D_MAX), a hair low so that the chunk
# bound never decides an element that the per-element test in `_far_wings` would not
_UU_MAX = (_TABLE_D_MAX * GRID) ** 2 * (1.0 - 1e-12)


def _kernel(
    out: tuple[FloatArray, ...],
    call: NDArray[np.bool_],
    F: FloatArray,
    K: FloatArray,
    T: FloatArray,
    V: FloatArray,
    D: FloatArray,
    unit_discount: bool,
    w: _Scratch,
) -> bool:
    """Price and Greeks of valid, unexpired inputs into 1-D ``out`` arrays of one length ``n``;
    False when some input may be bad or expired (then ``pricing_reason`` decides).

    Inputs are 1-D of length ``n`` or 0-d; ``w`` holds work arrays of length ``n``. Every
    operation writes into a preallocated array: this is the hot loop of a book reprice.

    The price is computed on the out-of-the-money side ``so`` (a call when F <= K, a put
    otherwise) plus the intrinsic value, so an in-the-money price carries an absolute error
    of a few ulps of itself (not of F), and an out-of-the-money one a relative error.
    Calls and puts differ only in the intrinsic term (no branches, no fancy indexing).

    The normal CDFs ``N(so d1)``, ``N(so d2)`` come from `normal_cdf`'s table and Taylor
    series, which reuse the one ``exp`` the density needs (``K n(d2) = F n(d1)``): about a
    third of the cost of two scipy ``erfc`` calls, and as accurate as them while
    ``|d| <= _TABLE_D_MAX`` (the rest, far wings only, take ``erfc``).
    """
    price, delta, gamma, vega, theta, vanna, volga = out
    T2, e, g, hg, idx, itm, mask, q1, q2, so, u = (
        w.T2, w.e, w.g, w.hg, w.idx, w.itm, w.mask, w.q1, w.q2, w.so, w.u
    )  # fmt: skip
    # outputs as work arrays until their final values: names for what they hold meanwhile
    sq, v, nh, m1, m2, N1 = vega, gamma, theta, volga, vanna, delta
    np.sqrt(T, out=sq)
    np.multiply(V, sq, out=v)  # total standard deviation
    np.divide(K, F, out=T2)
    np.log(T2, out=T2)  # ln(K/F) = -x
    np.divide(T2, v, out=g)  # -x/v
    # OTM side so = +1 (call) when F <= K, -1 (put) when F > K; in grid units of normal_cdf
    # (GRID a power of 2: exact) u = GRID w with w = -so d, and N(so d) = N(-w) = TABLE[mirror
    # index] - e Q(u) with e = exp(-d^2/2).
    np.copysign(GRID, T2, out=so)
    np.greater_equal(T2, 0.0, out=itm)  # OTM side is the call
    np.multiply(v, -0.5, out=nh)
    np.add(g, nh, out=m1)  # -d1
    np.subtract(g, nh, out=m2)  # -d2
    np.multiply(so, m1, out=u)
    np.multiply(u, u, out=q1)
    n = g.shape[0]
    uu_max = float(q1.max()) if n else 0.0  # NaN if a bad input made d NaN
    np.multiply(q1, -0.5 / GRID**2, out=e)
    np.exp(e, out=e)  # exp(-d1^2/2)
    split_grid(u, hg, idx, mirror=True)
    taylor_into(u, q1, hg, q2)  # Q(w1)
    np.take(TABLE, idx, out=N1, mode="clip")
    np.multiply(q2, e, out=q2)
    np.subtract(N1, q2, out=N1)  # N(so d1)
    np.multiply(so, m2, out=u)
    np.multiply(u, u, out=q1)
    if n:
        uu_max = max(uu_max, float(q1.max()))
    split_grid(u, hg, idx, mirror=True)
    taylor_into(u, q1, hg, q2)  # Q(w2)
    np.take(TABLE, idx, out=T2, mode="clip")
    # so (OTM-side undiscounted price) = F N(so d1) - K N(so d2), N(so d2) = T2 - e2 Q(w2),
    # K e2 = F e
    np.multiply(q2, e, out=q2)
    np.add(N1, q2, out=q2)
    np.multiply(F, q2, out=price)
    np.multiply(T2, K, out=T2)
    np.subtract(price, T2, out=price)
    np.multiply(so, 1.0 / GRID, out=so)  # +-1, exact
    ok = True
    if n:
        # Chunk bounds (a few reductions) for validity and for repairs (a desk's book needs
        # none). Valid means: tau and vol finite and positive (v > 0 and d finite), the
        # strike finite and positive given the forward (d finite) and the forward positive
        # (with K <= 0 or F = inf, d is not finite); the discount is checked below, 0-d
        # inputs by the caller. NaN fails every comparison.
        v_min = float(v.min())
        ok = uu_max < math.inf and v_min > 0.0 and (F.ndim == 0 or float(F.min()) > 0.0)
        if not uu_max <= _UU_MAX:
            _far_wings(price, N1, so, m1, m2, g, v, F, K, mask)
        # q = |g| <= max |w| (w = q -+ v/2), so the chunk bound on q^3 / v holds per element
        q_max = math.sqrt(uu_max) / GRID if uu_max < math.inf else math.inf
        if not q_max * q_max * q_max <= _CANCEL_LIMIT * min(v_min, _V_CAP):  # no overflow
            _fix_cancellation(price, so, v, g, e, F, q1, q2, mask)
    # In the money (call: F > K, put: F < K): price = so (P + K - F) (intrinsic value added,
    # no cancellation), delta = so (N(so d1) - 1); out of it: so P and so N(so d1).
    np.not_equal(call, itm, out=itm)
    np.copyto(g, itm)
    np.subtract(N1, g, out=N1)
    np.subtract(K, F, out=T2)
    np.multiply(T2, g, out=T2)
    np.add(price, T2, out=price)
    if not unit_discount:
        np.multiply(so, D, out=so)  # so D: discounted price and delta in one product each
    np.multiply(so, N1, out=delta)
    np.multiply(price, so, out=price)
    # Greeks from the (discounted) density D n(d1)
    np.multiply(e, _INV_SQRT_2PI, out=e)
    if not unit_discount:
        np.multiply(e, D, out=e)
    Fe = q2
    np.multiply(e, F, out=Fe)  # D F n(d1)
    np.multiply(F, v, out=gamma)
    np.divide(e, gamma, out=gamma)  # D n(d1) / (F v)
    np.multiply(Fe, sq, out=vega)  # D F n(d1) sqrt(tau)
    np.divide(m2, V, out=vanna)  # -d2 / vol
    np.multiply(vega, m1, out=volga)
    np.multiply(volga, vanna, out=volga)  # vega d1 d2 / vol
    np.multiply(e, vanna, out=vanna)  # -D n(d1) d2 / vol
    # theta = -D F n(d1) v / (2 tau) + r price, r = -ln(D)/tau (D moves with tau at fixed r)
    np.multiply(Fe, nh, out=theta)
    if not unit_discount:
        np.log(D, out=q1)
        if D.ndim and n:  # D finite and positive <=> ln(D) finite: one reduction
            ok = ok and math.isfinite(float(np.dot(q1, q1)))
        np.multiply(q1, price, out=q1)
        np.subtract(theta, q1, out=theta)
    np.divide(theta, T, out=theta)
    return ok


def _far_wings(
    P: FloatArray,
    N1: FloatArray,
    so: FloatArray,
    m1: FloatArray,
    m2: FloatArray,
    g: FloatArray,
    v: FloatArray,
    F: FloatArray,
    K: FloatArray,
    far: NDArray[np.bool_],
) -> None:
    """Redo ``N(so d1)`` and ``P = F N(so d1) - K N(so d2)`` with scipy's ``erfc`` where
    ``max |d|`` (``|g| + v/2``) exceeds ``_TABLE_D_MAX``, beyond the table's accurate range.
    Per element, so a chunk's results never depend on its neighbours."""
    np.greater(np.abs(g) + 0.5 * v, _TABLE_D_MAX, out=far)
    idx = np.flatnonzero(far)
    s = so[idx]
    n1 = 0.5 * _sp.erfc(s * m1[idx] * _INV_SQRT2)  # N(so d1)
    n2 = 0.5 * _sp.erfc(s * m2[idx] * _INV_SQRT2)
    f = F[idx] if F.ndim else F
    k = K[idx] if K.ndim else K
    N1[idx] = n1
    P[idx] = f * n1 - k * n2


def _fix_cancellation(
    P: FloatArray,
    so: FloatArray,
    v: FloatArray,
    g: FloatArray,
    e: FloatArray,
    F: FloatArray,
    q: FloatArray,
    cube: FloatArray,
    risky: NDArray[np.bool_],
) -> None:
    """Far OTM at short expiry ``P = F N(so d1) - K N(so d2)`` cancels; recompute those from
    erfcx.

    With ``q = |x|/v`` (``g = +-x/v`` on entry) and ``t = v/2`` (the OTM side's ``d``s are
    ``-(q -+ t)``), the undiscounted OTM price ``so P`` is
    ``F exp(-d1^2/2) (erfcx((q - t)/sqrt2) - erfcx((q + t)/sqrt2)) / 2`` (``e`` holds
    ``exp(-d1^2/2)``), whose relative error is about ``eps q / v`` instead of the naive
    formula's ``eps q^3 / v``. It also covers ``q > 25`` at any ``v``, where ``N(so d2)``
    would underflow before ``K N(so d2)`` (huge strikes). Uses ``q`` and ``cube`` as scratch.
    """
    np.abs(g, out=q)
    np.minimum(v, _V_CAP, out=cube)
    np.divide(q, cube, out=cube)
    np.multiply(cube, q, out=cube)
    np.multiply(cube, q, out=cube)  # q^3 / min(v, V_CAP)
    np.greater(cube, _CANCEL_LIMIT, out=risky)
    if not risky.any():
        return
    idx = np.flatnonzero(risky)
    qq = q[idx]
    t = 0.5 * v[idx]
    lo = (qq - t) * _INV_SQRT2
    hi = (qq + t) * _INV_SQRT2
    f = F[idx] if F.ndim else F
    # lo > 0 whenever the cancellation is severe (lo < 0 only for v > ~40): keep naive there.
    fixed = so[idx] * (0.5 * (f * e[idx]) * (_sp.erfcx(lo) - _sp.erfcx(hi)))
    P[idx] = np.where(lo > 0, fixed, P[idx])


def _prepare(
    is_call: ArrayLike, *args: ArrayLike
) -> tuple[tuple[int, ...], NDArray[np.bool_], list[FloatArray]]:
    """Broadcast shape, bool call array and float64 inputs, each 0-d or flat of full size."""
    call = np.asarray(is_call)
    if call.dtype != np.bool_:
        call = call.astype(np.bool_)
    floats = [_as_f64(a) for a in args]
    shape = np.broadcast_shapes(call.shape, *(a.shape for a in floats))
    size = math.prod(shape)

    def flat(a: NDArray[Any]) -> NDArray[Any]:
        if a.ndim == 0:
            return a
        if a.size == 1:
            return a.reshape(())
        if a.shape != shape:
            a = np.broadcast_to(a, shape)
        return np.ascontiguousarray(a).reshape(size)

    return shape, flat(call), [flat(a) for a in floats]


_CHUNK = 8192  # elements per kernel call: ~12 work arrays, 7 outputs, 5 inputs of 64 KiB: L2
# Below this a thread hand-off (and its tail latency when the other core is busy) costs more
# than it saves: a 10k-option book tick stays on the calling thread.
_PARALLEL_MIN = 32768
_workers = WorkerPool(max(1, min(os.cpu_count() or 1, 8)), "hedgerd-pricing", caller_works=True)


def set_threads(n: int) -> None:
    """Number of threads a large reprice is split over (default: CPU count, at most 8).

    numpy and scipy ufuncs release the GIL, so chunks run in parallel. 1 disables threads.
    """
    _workers.set_threads(n)


_local = threading.local()


def _thread_scratch() -> _Scratch:
    """This thread's chunk-sized work arrays (allocated once per thread, reused)."""
    scratch: _Scratch | None = getattr(_local, "scratch", None)
    if scratch is None or scratch.n != _CHUNK:
        scratch = _Scratch(_CHUNK)
        _local.scratch = scratch
    return scratch


def _run_kernel(
    out: tuple[FloatArray, ...],
    call: NDArray[np.bool_],
    args: tuple[FloatArray, ...],
    unit_discount: bool,
    size: int,
) -> bool:
    """Run the kernel over ``[0, size)`` in chunks, shared with pool threads when large;
    False if any chunk's kernel found a possibly bad input.

    The calling thread and the workers take chunks from one counter, so the caller never
    waits for a worker to be scheduled: on a busy machine it just does all chunks itself
    (single-thread speed), on an idle one the work splits across cores. At the end the
    caller cancels workers that have not started and waits only for chunks in flight.
    """
    threads = _workers.threads if size >= _PARALLEL_MIN else 1
    n_chunks = -(-size // _CHUNK)
    chunk = -(-size // n_chunks) if n_chunks else _CHUNK  # equal chunks: no short tail
    counter = itertools.count()
    flags: list[bool] = []  # list.append is atomic under the GIL

    def work() -> None:
        scratch = _thread_scratch()
        with np.errstate(all="ignore"):  # bad elements are overwritten with NaN afterwards
            while (i := next(counter)) < n_chunks:  # next() on a count is atomic under the GIL
                a = i * chunk
                b = min(a + chunk, size)
                sl = slice(a, b)
                w = scratch if b - a == scratch.n else scratch.view(b - a)
                F, K, T, V, D = (x[sl] if x.ndim else x for x in args)
                c = call[sl] if call.ndim else call
                flags.append(_kernel(tuple(o[sl] for o in out), c, F, K, T, V, D, unit_discount, w))

    if threads <= 1 or n_chunks <= 1:
        work()
        return all(flags)
    pool = _workers.executor()
    futures = [pool.submit(work) for _ in range(min(threads, n_chunks) - 1)]
    work()
    for f in futures:
        if not f.cancel():  # started: it holds at most one chunk
            f.result()
    return all(flags)


def black76_into(
    out: Greeks,
    is_call: ArrayLike,
    forward: ArrayLike,
    strike: ArrayLike,
    tau: ArrayLike,
    vol: ArrayLike,
    discount: ArrayLike = 1.0,
) -> Greeks:
    """Like ``black76`` but writes into preallocated ``out`` (arrays of the broadcast shape,
    float64, C-contiguous) and returns it. For repricing a book on every tick: with 1-D
    contiguous float64 inputs of the output length (or scalars) and a bool ``is_call``,
    nothing of the book's size is allocated."""
    shape, call, (F, K, T, V, D) = _prepare(is_call, forward, strike, tau, vol, discount)
    size = math.prod(shape)
    arrays = out.arrays()
    for a in arrays:
        if a.shape != shape or a.dtype != np.float64 or not a.flags.c_contiguous:
            raise ValueError(f"out arrays must be C-contiguous float64 of shape {shape}")
    flat_out = tuple(a.reshape(size) for a in arrays)
    unit_discount = D.ndim == 0 and float(D) == 1.0
    ok = _run_kernel(flat_out, call, (F, K, T, V, D), unit_discount, size)
    # the kernel checks array inputs on the way (chunk reductions); scalars are checked here
    if not (ok and _all_valid(*(x for x in (F, K, T, V, D) if x.ndim == 0))):
        reason = pricing_reason(F, K, T, V, D).reshape(size)
        _apply_reason(flat_out, reason, call, F, K, D)
    return out


def _apply_reason(
    out: tuple[FloatArray, ...],
    reason: NDArray[np.int8],
    call: NDArray[np.bool_],
    F: FloatArray,
    K: FloatArray,
    D: FloatArray,
) -> None:
    bad = reason == Reason.BAD_INPUT
    if bad.any():
        for a in out:
            a[bad] = np.nan
    expired = reason == Reason.EXPIRED
    if expired.any():
        idx = np.flatnonzero(expired)

        def take(a: NDArray[Any]) -> NDArray[Any]:
            return np.broadcast_to(a, reason.shape)[idx]

        s = np.where(take(call), 1.0, -1.0)
        f, k, d = take(F), take(K), take(D)
        itm = s * (f - k)
        out[0][idx] = d * np.maximum(itm, 0.0)
        out[1][idx] = d * s * np.where(itm > 0, 1.0, np.where(itm == 0, 0.5, 0.0))
        for a in out[2:]:
            a[idx] = 0.0


def black76(
    is_call: ArrayLike,
    forward: ArrayLike,
    strike: ArrayLike,
    tau: ArrayLike,
    vol: ArrayLike,
    discount: ArrayLike = 1.0,
) -> Greeks:
    """Black-76 price and Greeks of European options on a forward.

    ``is_call`` (bool, broadcast), ``forward`` and ``strike`` (same price unit, e.g. USD),
    ``tau`` (years), ``vol`` (annualised, 1.00 = 100 %), ``discount`` (factor to payment).
    Returns ``Greeks`` with float64 arrays of the broadcast shape (0-d for scalar inputs).
    See the module docstring for the Greeks' definitions, theta's treatment of the discount,
    expiry (tau == 0) and bad input (NaN outputs; reasons from ``pricing_reason``).
    """
    args = (forward, strike, tau, vol, discount)
    if isinstance(is_call, _SCALARS) and all(isinstance(a, _SCALARS) for a in args):
        try:
            values = _black76_scalar(bool(is_call), *(float(a) for a in args))  # type: ignore[arg-type]
            return Greeks(*(np.array(x, dtype=np.float64) for x in values))
        except (ArithmeticError, ValueError):
            pass  # Python floats raise where numpy gives inf/NaN: use the array path
    shape = np.broadcast_shapes(
        *(np.shape(a) for a in (is_call, forward, strike, tau, vol, discount))
    )
    if math.prod(shape) == 1:
        try:
            values = _black76_scalar(
                bool(np.asarray(is_call).reshape(-1)[0]),
                *(float(np.asarray(a, dtype=np.float64).reshape(-1)[0])
                  for a in (forward, strike, tau, vol, discount)),
            )  # fmt: skip
            return Greeks(*(np.full(shape, x) for x in values))
        except (ArithmeticError, ValueError):
            pass
    return black76_into(Greeks.empty(shape), is_call, forward, strike, tau, vol, discount)


def _black76_scalar(
    call: bool, F: float, K: float, T: float, V: float, D: float
) -> tuple[float, float, float, float, float, float, float]:
    """One option on Python floats: the vectorised kernel's formulas step by step (numpy's
    per-call overhead would cost ~50 us for a single option). Tested against the kernel."""
    finite = all(math.isfinite(a) for a in (F, K, T, V, D))
    if not (finite and F > 0 and K > 0 and D > 0 and T >= 0 and (V > 0 or (T == 0 and V == 0))):
        nan = math.nan
        return nan, nan, nan, nan, nan, nan, nan
    if T == 0:
        s = 1.0 if call else -1.0
        itm = s * (F - K)
        step = 1.0 if itm > 0 else (0.5 if itm == 0 else 0.0)
        return D * max(itm, 0.0), D * s * step, 0.0, 0.0, 0.0, 0.0, 0.0
    sq = math.sqrt(T)
    v = V * sq
    xk = math.log(K / F)
    g = xk / v
    nh = v * -0.5
    m1 = g + nh  # -d1
    m2 = g - nh  # -d2
    so_g = math.copysign(GRID, xk)
    u1 = so_g * m1
    u2 = so_g * m2
    q1 = u1 * u1
    e = math.exp(q1 * (-0.5 / GRID**2))
    so = so_g * (1.0 / GRID)
    if abs(g) + 0.5 * v > _TABLE_D_MAX:
        N1 = 0.5 * float(_sp.erfc(so * m1 * _INV_SQRT2))
        N2 = 0.5 * float(_sp.erfc(so * m2 * _INV_SQRT2))
        P = F * N1 - K * N2
    else:
        T1, Q1 = upper_tail_scalar(u1, q1)
        N1 = T1 - Q1 * e
        T2, Q2 = upper_tail_scalar(u2, u2 * u2)
        P = F * (N1 + Q2 * e) - T2 * K
    q = abs(g)
    if q / min(v, _V_CAP) * q * q > _CANCEL_LIMIT:
        t = 0.5 * v
        lo = (q - t) * _INV_SQRT2
        if lo > 0:
            hi = (q + t) * _INV_SQRT2
            P = so * (0.5 * (F * e) * float(_sp.erfcx(lo) - _sp.erfcx(hi)))
    if call != (xk >= 0):  # in the money
        N1 -= 1.0
        P += K - F
    delta = so * N1
    price = P * so
    n = e * _INV_SQRT_2PI
    if D != 1.0:
        n *= D
        price *= D
        delta *= D
    Fn = n * F
    gamma = n / (F * v)
    vega = Fn * sq
    r2 = m2 / V
    vanna = n * r2
    volga = vega * m1 * r2
    theta = Fn * nh
    if D != 1.0:
        theta -= math.log(D) * price
    theta /= T
    return price, delta, gamma, vega, theta, vanna, volga


def black_scholes(
    is_call: ArrayLike,
    spot: ArrayLike,
    strike: ArrayLike,
    tau: ArrayLike,
    vol: ArrayLike,
    rate: ArrayLike = 0.0,
    div: ArrayLike = 0.0,
) -> Greeks:
    """Black-Scholes(-Merton) price and Greeks with respect to spot.

    ``rate`` and ``div`` are continuously compounded annual rates (any finite sign); the
    forward is ``spot * exp((rate - div) * tau)`` and the discount ``exp(-rate * tau)``.
    Delta, gamma and vanna are per unit of spot; theta is at fixed spot, rate and div:
    ``theta_S = theta_76 - (rate - div) * F * delta_76``. Built on ``black76`` (one code path);
    bad input gives NaN like ``black76`` (a NaN or infinite rate or div is bad input).
    """
    args = (spot, strike, tau, vol, rate, div)
    if isinstance(is_call, _SCALARS) and all(isinstance(a, _SCALARS) for a in args):
        try:
            return _black_scholes_scalar(bool(is_call), *(float(a) for a in args))  # type: ignore[arg-type]
        except (ArithmeticError, ValueError):
            pass  # see black76
    S, K, T, V, r, q = (_as_f64(a) for a in args)
    with np.errstate(all="ignore"):
        carry = np.exp((r - q) * T)  # F / S
        F = S * carry
        D = np.exp(-r * T)
    g = black76(is_call, F, K, T, V, D)
    with np.errstate(all="ignore"):
        # at expiry every time derivative is reported as 0, as in black76
        theta = np.where(T == 0, 0.0, g.theta - (r - q) * F * g.delta)
        gamma = g.gamma * carry * carry
        delta = g.delta * carry
        vanna = g.vanna * carry
    return Greeks(
        price=g.price,
        delta=np.asarray(delta, dtype=np.float64),
        gamma=np.asarray(gamma, dtype=np.float64),
        vega=g.vega,
        theta=np.asarray(theta, dtype=np.float64),
        vanna=np.asarray(vanna, dtype=np.float64),
        volga=g.volga,
    )


def _black_scholes_scalar(
    call: bool, S: float, K: float, T: float, V: float, r: float, q: float
) -> Greeks:
    """``black_scholes`` for one option on Python floats (same transformation)."""
    carry = math.exp((r - q) * T)  # OverflowError: the caller falls back to the array path
    D = math.exp(-r * T)
    F = S * carry
    price, delta, gamma, vega, theta, vanna, volga = _black76_scalar(call, F, K, T, V, D)
    values = (
        price,
        delta * carry,
        gamma * carry * carry,
        vega,
        theta - (r - q) * F * delta if T != 0 else theta,
        vanna * carry,
        volga,
    )
    return Greeks(*(np.array(x, dtype=np.float64) for x in values))
