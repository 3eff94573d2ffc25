"""The exact no-trade band of a static option book, by backward induction (dynamic programming).

Problem (Hodges–Neuberger 1989, Davis–Panas–Zariphopoulou 1993): hold `h` coin of the
underlying against a static option book of value B(t, S) (USD, Black-Scholes at the scenario's
vol, zero rate); at each monitoring step t_i choose the new hedge h' paying lambda S |h' - h|,
carry it over the step, and unwind it (taker) at the end. Two criteria:

- `exp_utility` (default): maximise E[-exp(-gamma W_T)], W_T = sum_i (h'_i dS_i + dB_i) - costs
  - unwind. With L = log of the certainty factor (gamma x USD):

      L(T, S, h) = gamma lambda S |h|
      L(t, S, h) = min_{h'} gamma lambda S |h' - h|
                   + log E_t exp(-gamma (h' dS + dB) + L(t + dt, S', h'))

  Costs are inside the exponential, so their randomness (more trading when realised vol is
  high, which is when a short-gamma book loses) counts as risk, as in the backtest's std.
- `mean_variance`: minimise E[costs] + (gamma/2) Var[gross P&L]. The gross P&L is a sum of
  martingale increments, so its variance is E[sum_i Var_i(h' dS + dB)] and

      V(t, S, h) = min_{h'} lambda S |h' - h| + (gamma/2) Var_t(h' dS + dB) + E_t V(t + dt, S', h')

  (the second-order form of the first; it misses the cost-risk covariance).

The price moves on a trinomial lattice in log S (spacing sigma sqrt(3 dt), probabilities about
1/6, 2/3, 1/6: the normal's first four moments; the outer two set so S is a martingale), with a
ghost node past each edge. The minimum over h' has the band structure: buy up to
h_lo = argmin(G + k h'), sell down to h_hi = argmin(G - k h'), G the bracket without the
trading cost, k the cost per coin; both found on the h grid with a parabolic refinement, and
the value at every h by running minima (exact on the grid, no convexity assumed).

Units: spot USD, h and band edges in coin (the hedge position, not the net delta), gamma in
1/USD, lambda a fraction of notional, times in years.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Literal

import numpy as np
from numpy.typing import NDArray

from hedgerd.pricing.black import black_scholes

Arr = NDArray[np.float64]
Criterion = Literal["exp_utility", "mean_variance"]


@dataclass(frozen=True, slots=True)
class StaticOption:
    """One option of the book: call or put, strike (USD), expiry (years from start), qty (coin,
    negative = short)."""

    is_call: bool
    strike_usd: float
    expiry_years: float
    qty_coin: float


@dataclass(frozen=True, slots=True)
class ExactBand:
    """The solved band: h_lo/h_hi of shape (steps, nx) in coin of hedge, on log-spot grid `x`.

    Row i is the decision at time i * dt_years (years from start).
    """

    x: Arr  # log spot grid (log USD)
    h_lo: Arr  # (steps, nx), or (steps, regimes, nx) for `solve_regimes`
    h_hi: Arr
    dt_years: float
    risk_aversion_per_usd: float
    lam: float

    @property
    def steps(self) -> int:
        return int(self.h_lo.shape[0])

    def edges(
        self, step: int, spot_usd: Arr, regime: NDArray[np.intp] | None = None
    ) -> tuple[Arr, Arr]:
        """Hedge-position edges (coin) at decision `step` for spots `spot_usd` (USD), in each
        path's `regime` for a band of `solve_regimes`."""
        i = min(max(step, 0), self.steps - 1)
        xs = np.log(spot_usd)
        if self.h_lo.ndim == 2:
            return np.interp(xs, self.x, self.h_lo[i]), np.interp(xs, self.x, self.h_hi[i])
        assert regime is not None, "a regime band needs each path's regime"
        lo = np.empty_like(xs)
        hi = np.empty_like(xs)
        for r in range(self.h_lo.shape[1]):
            m = regime == r
            lo[m] = np.interp(xs[m], self.x, self.h_lo[i, r])
            hi[m] = np.interp(xs[m], self.x, self.h_hi[i, r])
        return lo, hi


def _payoff(o: StaticOption, spot: Arr) -> Arr:
    """What one coin of `o` pays at expiry (USD per coin)."""
    gain = spot - o.strike_usd if o.is_call else o.strike_usd - spot
    return np.maximum(gain, 0.0)


def book_value(options: tuple[StaticOption, ...], spot: Arr, t_years: float, vol: float) -> Arr:
    """Black-Scholes value of the static book at time `t_years` (USD; zero rate)."""
    total = np.zeros_like(spot)
    for o in options:
        tau = o.expiry_years - t_years
        if tau <= 1e-12:
            total += o.qty_coin * _payoff(o, spot)
        else:
            g = black_scholes(o.is_call, spot, o.strike_usd, tau, vol, 0.0)
            total += o.qty_coin * np.asarray(g.price)
    return total


def _argmin_refined(f: Arr, h: Arr) -> Arr:
    """Row-wise argmin of f (rows x grid) along the grid, refined by a parabola through the
    minimum and its neighbours (grid units of `h`)."""
    n = f.shape[1]
    j = np.argmin(f, axis=1)
    jc = np.clip(j, 1, n - 2)
    rows = np.arange(f.shape[0])
    fm, f0, fp = f[rows, jc - 1], f[rows, jc], f[rows, jc + 1]
    den = fm - 2.0 * f0 + fp
    with np.errstate(divide="ignore", invalid="ignore"):
        off = np.where(den > 0, 0.5 * (fm - fp) / den, 0.0)
    off = np.where(j == jc, np.clip(off, -0.5, 0.5), 0.0)
    dh = h[1] - h[0]
    out: Arr = h[j] + off * dh
    return out


@dataclass(frozen=True, slots=True)
class _Lattice:
    """The trinomial log-spot grid, with one ghost node past each edge, and the hedge grid."""

    dx: float  # log-spot spacing
    x: Arr  # log spot (log USD), (nx,)
    s: Arr  # spot (USD), (nx,)
    s_out: Arr  # the ghost spots below and above the grid (USD), (2,)
    ds: Arr  # spot move to the down / same / up node (USD), (3, nx)
    h: Arr  # hedge positions (coin), (nh,)


def _lattice(
    options: tuple[StaticOption, ...],
    spot_usd: float,
    vol: float,
    dt_years: float,
    horizon_years: float,
    n_sigma: float,
    nh: int,
    h_range: tuple[float, float] | None,
) -> _Lattice:
    """Spacing vol sqrt(3 dt), `n_sigma` standard deviations of the horizon either side of the
    spot; `nh` hedge points over `h_range` (coin; default: the book's delta range with a 5 %
    margin)."""
    dx = vol * math.sqrt(3.0 * dt_years)
    half = n_sigma * vol * math.sqrt(horizon_years)
    nxh = max(2, math.ceil(half / dx))
    x = math.log(spot_usd) + dx * np.arange(-nxh, nxh + 1, dtype=np.float64)
    s = np.exp(x)
    if h_range is None:
        scale = sum(abs(o.qty_coin) for o in options) or 1.0
        lo = -sum(max(o.qty_coin, 0.0) if o.is_call else max(-o.qty_coin, 0.0) for o in options)
        hi = sum(max(-o.qty_coin, 0.0) if o.is_call else max(o.qty_coin, 0.0) for o in options)
        h_range = (lo - 0.05 * scale, hi + 0.05 * scale)
    # Spot moves to the neighbours. One ghost node beyond each edge: its spot and book value
    # are exact, its value function is extrapolated linearly in log S (clamping would feed
    # the edge's distortion inward).
    s_out = np.exp(np.array([x[0] - dx, x[-1] + dx]))
    s_dn = np.concatenate([s_out[:1], s[:-1]])
    s_up = np.concatenate([s[1:], s_out[1:]])
    ds = np.stack([s_dn - s, np.zeros_like(s), s_up - s])
    return _Lattice(dx, x, s, s_out, ds, np.linspace(h_range[0], h_range[1], nh))


def _up_share(dx: float) -> float:
    """The share of a step's side probability that goes up, so that the spot is a martingale
    on the lattice (zero rate): a symmetric split would give it a drift sigma^2/2."""
    return (1.0 - math.exp(-dx)) / (math.exp(dx) - math.exp(-dx))


def _neighbours(a: Arr) -> tuple[Arr, Arr]:
    """Values of `a` at the down and up spot node (spot on axis -2), linear past the edges."""
    dn = np.empty_like(a)
    dn[..., 1:, :] = a[..., :-1, :]
    dn[..., 0, :] = 2.0 * a[..., 0, :] - a[..., 1, :]
    up = np.empty_like(a)
    up[..., :-1, :] = a[..., 1:, :]
    up[..., -1, :] = 2.0 * a[..., -1, :] - a[..., -2, :]
    return dn, up


def _band_step(ev: Arr, kh: Arr, h: Arr) -> tuple[Arr, Arr, Arr]:
    """One decision from W(h') = `ev` (spots x hedges, consumed) and the cost of holding each
    hedge `kh` (same shape, the criterion's unit): buy up to h_lo = argmin(W + kh), sell down
    to h_hi = argmin(W - kh), and the value before trading V(h) = min(min_{h' >= h} (W + kh)(h')
    - kh(h), min_{h' <= h} (W - kh)(h') + kh(h)), by running minima (exact on the grid, no
    convexity assumed). Returns (h_lo, h_hi, V)."""
    buy = ev + kh
    sell = ev
    sell -= kh  # in place: W is not needed any more
    lo = _argmin_refined(buy, h)
    hi = _argmin_refined(sell, h)
    buy_min = np.minimum.accumulate(buy[:, ::-1], axis=1)[:, ::-1]
    buy_min -= kh
    np.minimum.accumulate(sell, axis=1, out=sell)
    sell += kh
    return lo, hi, np.minimum(buy_min, sell, out=sell)


def solve(
    options: tuple[StaticOption, ...],
    spot_usd: float,
    vol: float,
    dt_years: float,
    steps: int,
    lam: float,
    risk_aversion_per_usd: float,
    *,
    n_sigma: float = 5.0,
    nh: int = 481,
    h_range: tuple[float, float] | None = None,
    criterion: Criterion = "exp_utility",
) -> ExactBand:
    """Backward induction for the band of `options` hedged in the underlying (see module doc).

    `steps` decisions at 0, dt, ..., (steps - 1) dt; the hedge is unwound at steps * dt.
    `n_sigma`: half-width of the log-spot grid in standard deviations over the whole horizon;
    `nh`: points of the hedge grid over `h_range` (coin; default: the book's delta range with
    a 5 % margin). Vectorised numpy: O(steps x nx x nh).
    """
    g = risk_aversion_per_usd
    horizon = steps * dt_years
    lat = _lattice(options, spot_usd, vol, dt_years, horizon, n_sigma, nh, h_range)
    x, s, s_out, ds, h = lat.x, lat.s, lat.s_out, lat.ds, lat.h
    # 2/3 in the middle, the outer 1/3 split so the spot is a martingale (a utility hedger
    # would trade a drift).
    p_up = _up_share(lat.dx) / 3.0
    p = np.array([1.0 / 3.0 - p_up, 2.0 / 3.0, p_up])
    ms = p @ ds
    var_s = p @ (ds * ds) - ms * ms  # Var_t(dS), USD^2
    lam_s = lam * s  # USD per coin traded
    # Cost of trading to h in the criterion's unit: USD (mean-variance) or gamma x USD
    # (log of the exponential utility's certainty factor).
    kh = lam_s[:, None] * h[None, :] * (g if criterion == "exp_utility" else 1.0)
    v = np.abs(kh)  # unwind at expiry
    h_lo = np.empty((steps, x.size))
    h_hi = np.empty((steps, x.size))
    b_next = book_value(options, s, horizon, vol)
    o_next = book_value(options, s_out, horizon, vol)
    for i in range(steps - 1, -1, -1):
        b_now = book_value(options, s, i * dt_years, vol)
        o_now = book_value(options, s_out, i * dt_years, vol)
        b_dn = np.concatenate([o_next[:1], b_next[:-1]])
        b_up = np.concatenate([b_next[1:], o_next[1:]])
        db = np.stack([b_dn - b_now, b_next - b_now, b_up - b_now])
        v_dn, v_up = _neighbours(v)
        cov = p @ (ds * db) - ms * (p @ db)
        if criterion == "exp_utility":
            # G(h') = log E exp(-gamma (h' dS + dB) + L(t + dt, S', h')): costs, unwind and
            # P&L all inside one exponential, so the randomness of costs is risk too.
            terms = []
            for j, nxt in enumerate((v_dn, v, v_up)):
                nxt -= g * (h[None, :] * ds[j][:, None] + db[j][:, None])
                terms.append(nxt)
            top = np.maximum(np.maximum(terms[0], terms[1]), terms[2])
            acc = np.zeros_like(top)
            for j, term in enumerate(terms):
                term -= top
                np.exp(term, out=term)
                acc += p[j] * term
            np.log(acc, out=acc)
            ev = acc
            ev += top
        else:
            # Variance-minimising hedge of the step (coin), curvature of the risk term (USD).
            hstar = -cov / var_s
            curv = 0.5 * g * var_s
            ev = v * p[1]  # E V(t + dt, S', h')
            ev += p[0] * v_dn
            ev += p[2] * v_up
            dev = h[None, :] - hstar[:, None]
            dev *= dev
            dev *= curv[:, None]
            ev += dev  # W(h'), USD
        h_lo[i], h_hi[i], v = _band_step(ev, kh, h)
        b_next, o_next = b_now, o_now
    return ExactBand(x, h_lo, np.maximum(h_hi, h_lo), dt_years, g, lam)


def solve_regimes(
    options: tuple[StaticOption, ...],
    spot_usd: float,
    regime_vols: tuple[float, ...],
    switch_per_year: float,
    dt_years: float,
    steps: int,
    lam: float,
    risk_aversion_per_usd: float,
    *,
    n_sigma: float = 5.0,
    nh: int = 481,
    h_range: tuple[float, float] | None = None,
) -> ExactBand:
    """The mean-variance optimal band when the vol switches among `regime_vols` (the
    backtest's `regimes` process: each step diffuses at the current regime's vol, then leaves
    it with probability 1 - exp(-q dt) for one of the others at random) and the hedger knows
    the regime. The book is valued by the same induction (its true conditional expectation,
    not Black-Scholes), so its increments are martingale increments and the variance of the
    P&L is additive over steps, as in `solve`'s `mean_variance`. Costs and the unwind as in
    `solve`. Edges of shape (steps, regimes, nx), coin of hedge.
    """
    g = risk_aversion_per_usd
    vols = np.asarray(regime_vols, dtype=np.float64)
    k = vols.size
    horizon = steps * dt_years
    if any(abs(o.expiry_years - horizon) > dt_years for o in options):
        raise ValueError("solve_regimes values a book that expires at the horizon only")
    # Spaced for the highest vol; a calmer regime moves to the side less often.
    lat = _lattice(options, spot_usd, float(vols.max()), dt_years, horizon, n_sigma, nh, h_range)
    x, s, s_out, ds, h, dx = lat.x, lat.s, lat.s_out, lat.ds, lat.h, lat.dx
    # Per regime: side probability sigma^2 dt / dx^2, split so the spot is a martingale.
    side = vols * vols * dt_years / (dx * dx)  # (k,)
    split = _up_share(dx)
    p = np.stack([side * (1.0 - split), 1.0 - side, side * split], axis=1)  # (k, 3)
    stay = math.exp(-switch_per_year * dt_years)
    trans = np.full((k, k), (1.0 - stay) / max(k - 1, 1))
    np.fill_diagonal(trans, stay if k > 1 else 1.0)
    var_s = p @ (ds * ds)  # (k, nx): E dS = 0 by construction
    lam_s = lam * s
    kh = lam_s[:, None] * h[None, :]  # (nx, nh)
    v = np.broadcast_to(np.abs(kh), (k, *kh.shape)).copy()  # unwind at expiry
    h_lo = np.empty((steps, k, x.size))
    h_hi = np.empty((steps, k, x.size))

    # The book's value per regime on the grid and its two ghost nodes: (k, nx + 2).
    s_all = np.concatenate([s_out[:1], s, s_out[1:]])
    pay = sum((o.qty_coin * _payoff(o, s_all) for o in options), np.zeros_like(s_all))
    b = np.broadcast_to(pay, (k, pay.size)).copy()
    for i in range(steps - 1, -1, -1):
        # Regime mixing after the step: next-step values seen from the regime of this step.
        b_mix = trans @ b  # (k, nx + 2)
        b_dn, b_mid, b_up = b_mix[:, :-2], b_mix[:, 1:-1], b_mix[:, 2:]
        b_now = p[:, :1] * b_dn + p[:, 1:2] * b_mid + p[:, 2:] * b_up  # (k, nx)
        # Ghost nodes: extrapolate the new value linearly in log S (nothing at stake there).
        b_now_full = np.concatenate(
            [2 * b_now[:, :1] - b_now[:, 1:2], b_now, 2 * b_now[:, -1:] - b_now[:, -2:-1]], axis=1
        )
        cov = p[:, :1] * ds[0] * (b_dn - b_now) + p[:, 2:] * ds[2] * (
            b_up - b_now
        )  # (k, nx): Cov(dS, dB), E dS = 0
        hstar = -cov / var_s
        curv = 0.5 * g * var_s
        v_mix = np.einsum("rq,qxh->rxh", trans, v)
        v_dn, v_up = _neighbours(v_mix)
        ev = p[:, 1][:, None, None] * v_mix
        ev += p[:, 0][:, None, None] * v_dn
        ev += p[:, 2][:, None, None] * v_up
        dev = h[None, None, :] - hstar[:, :, None]
        ev += curv[:, :, None] * dev * dev
        v = np.empty_like(ev)
        for r in range(k):
            h_lo[i, r], h_hi[i, r], v[r] = _band_step(ev[r], kh, h)
        b = b_now_full
    return ExactBand(x, h_lo, np.maximum(h_hi, h_lo), dt_years, g, lam)
