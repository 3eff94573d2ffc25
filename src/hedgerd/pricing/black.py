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

Speed: ``black76_into`` runs the kernel in cache-sized chunks: numpy's vectorised ``log``
and ``exp`` (``ln(K/F)``, the density's one ``exp``, ``ln(D)``) into per-thread work arrays,
then one compiled loop (numba, `hedgerd.pricing._kernel`) computes all seven outputs per
option, checking each option's inputs, in one pass. The scalar path runs the same compiled
per-option code with libm's ``log``/``exp`` (no numpy call overhead). Large books are split
over a small thread pool (numpy ufuncs and the kernel release the GIL); ``set_threads``
tunes it. The compiled code is cached on disk (``__pycache__`` next to the kernel, or
``NUMBA_CACHE_DIR``): the first process on a machine compiles it (a few seconds), later ones
load it. ``scripts/bench_greeks.py`` prints the figures, and its ``numpy`` section the ratio
to a plain numpy implementation on the same inputs (docs/architecture.md, "Pricing speed").
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

from hedgerd.pricing import _kernel
from hedgerd.pricing.normal_cdf import TABLE
from hedgerd.pricing.reasons import REASON_DTYPE, Reason
from hedgerd.pricing.threads import WorkerPool

FloatArray = NDArray[np.float64]

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


_CHUNK = 8192  # elements per chunk: its work arrays (3 x 64 KiB, more for scalar inputs),
# inputs and outputs stay in a core's L2 cache between the vectorised and the compiled passes.
# Below this a thread hand-off (and its tail latency when the other core is busy) costs more
# than it saves: a 10k-option book tick stays on the calling thread.
_PARALLEL_MIN = 32768
_workers = WorkerPool(max(1, min(os.cpu_count() or 1, 8)), "hedgerd-pricing", caller_works=True)


def set_threads(n: int) -> None:
    """Number of threads a large reprice is split over (default: CPU count, at most 8).

    numpy ufuncs and the compiled kernel release the GIL, so chunks run in parallel. 1
    disables threads.
    """
    _workers.set_threads(n)


_local = threading.local()


def _thread_scratch() -> tuple[FloatArray, NDArray[np.bool_]]:
    """This thread's chunk-sized work arrays (allocated once per thread, reused): float rows
    ln(K/F), the density's exp, ln(D), then F, K, tau, vol, D broadcast from scalars; and a
    bool row for a scalar ``is_call``."""
    scratch: tuple[FloatArray, NDArray[np.bool_]] | None = getattr(_local, "scratch", None)
    if scratch is None:
        scratch = (np.empty((8, _CHUNK), dtype=np.float64), np.empty(_CHUNK, dtype=np.bool_))
        _local.scratch = scratch
    return scratch


def _run_kernel(
    out: tuple[FloatArray, ...],
    call: NDArray[np.bool_],
    args: tuple[FloatArray, ...],
    size: int,
) -> None:
    """Run the kernel over ``[0, size)`` in chunks, shared with pool threads when large.
    Inputs are 1-D, of length ``size`` or 1 (broadcast).

    Per chunk, numpy's vectorised ``log`` and ``exp`` (SIMD: several times cheaper than a
    libm call per element) compute the transcendentals into work arrays, and the compiled
    loop (`hedgerd.pricing._kernel.black76_range`) does the rest in one pass: validity,
    expiry, the table CDF, repairs, all seven outputs.

    The calling thread and the workers take chunks from one counter, so the caller never
    waits for a worker to be scheduled: on a busy machine it just does all chunks itself
    (single-thread speed), on an idle one the work splits across cores. At the end the
    caller cancels workers that have not started and waits only for chunks in flight.
    """
    threads = _workers.threads if size >= _PARALLEL_MIN else 1
    n_chunks = -(-size // _CHUNK)
    chunk = -(-size // n_chunks) if n_chunks else _CHUNK  # equal chunks: no short tail
    counter = itertools.count()
    scalar_d = args[4].shape[0] != size

    def work() -> None:
        w, call_row = _thread_scratch()
        xk, e, lnd = w[0], w[1], w[2]
        # the kernel reads 1-D arrays of the chunk's length: scalars are broadcast into this
        # thread's rows once per call (ln(D) of a scalar D too), arrays are sliced per chunk
        full: list[NDArray[Any]] = [call, *args]
        for n, row in enumerate((call_row, *w[3:])):
            if full[n].shape[0] != size:
                np.copyto(row[:chunk], full[n])
                full[n] = row[:chunk]
        with np.errstate(all="ignore"):  # bad elements come out NaN (the kernel checks each)
            if scalar_d:
                np.log(full[5], out=lnd[:chunk])
            while (i := next(counter)) < n_chunks:  # next() on a count is atomic under the GIL
                a = i * chunk
                b = min(a + chunk, size)
                m = b - a
                c, f, k, t, v, d = (x[a:b] if x.shape[0] == size else x[:m] for x in full)
                np.divide(k, f, out=xk[:m])
                np.log(xk[:m], out=xk[:m])  # ln(K/F)
                _kernel.exponents(xk[:m], t, v, e[:m])
                np.exp(e[:m], out=e[:m])
                if not scalar_d:
                    np.log(d, out=lnd[:m])
                outs = tuple(o[a:b] for o in out)
                _kernel.black76_range(TABLE, c, f, k, t, v, d, xk[:m], e[:m], lnd[:m], outs)

    if threads <= 1 or n_chunks <= 1:
        work()
        return
    pool = _workers.executor()
    futures = [pool.submit(work) for _ in range(min(threads, n_chunks) - 1)]
    work()
    for f in futures:
        if not f.cancel():  # started: it holds at most one chunk
            f.result()


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
    _run_kernel(flat_out, call.reshape(-1), tuple(x.reshape(-1) for x in (F, K, T, V, D)), size)
    return out


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
        values = _black76_scalar(bool(is_call), *(float(a) for a in args))  # type: ignore[arg-type]
        return Greeks(*(np.array(x, dtype=np.float64) for x in values))
    shape = np.broadcast_shapes(
        *(np.shape(a) for a in (is_call, forward, strike, tau, vol, discount))
    )
    if math.prod(shape) == 1:
        values = _black76_scalar(
            bool(np.asarray(is_call).reshape(-1)[0]),
            *(float(np.asarray(a, dtype=np.float64).reshape(-1)[0])
              for a in (forward, strike, tau, vol, discount)),
        )  # fmt: skip
        return Greeks(*(np.full(shape, x) for x in values))
    return black76_into(Greeks.empty(shape), is_call, forward, strike, tau, vol, discount)


def _black76_scalar(
    call: bool, F: float, K: float, T: float, V: float, D: float
) -> tuple[float, float, float, float, float, float, float]:
    """One option without numpy's per-call overhead (~10 us for the vectorised path): the
    compiled kernel's per-option function with libm's ``log`` and ``exp``, which may differ
    from numpy's vectorised ones by an ulp. Tested against the array path."""
    price, delta, gamma, vega, theta, vanna, volga = _kernel.black76_one(TABLE, call, F, K, T, V, D)
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
