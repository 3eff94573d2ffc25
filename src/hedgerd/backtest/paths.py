"""Price paths for the backtest, generated step by step and vectorised across paths.

Processes: GBM; Merton jumps (compensated, so the drift is unchanged); a two-or-more-state
Markov volatility regime; Heston (full truncation Euler). Each step also samples the intra-step
low and high of the mid (Brownian bridge in log price) for maker fills.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from numpy.typing import NDArray

from hedgerd.backtest.scenario import MarketSpec

Arr = NDArray[np.float64]


@dataclass(slots=True)
class PathState:
    spot: Arr  # USD
    vol: Arr  # instantaneous vol (annualised)
    low: Arr  # intra-step low of the last step (USD)
    high: Arr  # intra-step high of the last step (USD)


class PathGenerator:
    """Advances `n` paths one monitoring step at a time with its own seeded generator."""

    def __init__(self, market: MarketSpec, n: int, rng: np.random.Generator) -> None:
        self.m = market
        self.n = n
        self.rng = rng
        self.dt = market.dt_years
        self.drift = market.rate if market.drift is None else market.drift
        s0 = np.full(n, market.spot_usd)
        #: Each path's current regime (index into `regime_vols`); None for other processes.
        self.regime: NDArray[np.intp] | None = None
        if market.process == "regimes":
            self.regime = np.zeros(n, dtype=np.intp)
            self.regime_vols = np.asarray(market.regime_vols, dtype=np.float64)
            vol = self.regime_vols[self.regime]
        elif market.process == "heston":
            self.var = np.full(n, market.vol**2)
            vol = np.sqrt(self.var)
        else:
            vol = np.full(n, market.vol)
        self.state = PathState(s0, vol.copy(), s0.copy(), s0.copy())

    def expected_vol(self, tau_years: float) -> Arr:
        """Root of the mean variance expected over the next `tau_years` given each path's
        state (annualised): the implied vol of a market that knows the process.

        Regimes: leaving at rate q to one of the other k - 1 at random has generator
        Q = (q / (k - 1)) J - (q k / (k - 1)) I, so E[var(s)] = mean + (var_now - mean)
        e^{-a s}, a = q k / (k - 1). Heston: E[v(s)] = theta + (v - theta) e^{-kappa s}.
        Both averaged over [0, tau]."""
        m = self.m

        def avg(now: Arr, mean: float | Arr, rate: float) -> Arr:
            x = rate * tau_years
            w = (1.0 - np.exp(-x)) / x if x > 1e-12 else 1.0
            out: Arr = np.sqrt(np.maximum(mean + (now - mean) * w, 1e-12))
            return out

        if self.regime is not None and len(self.regime_vols) > 1:
            k = len(self.regime_vols)
            var = self.regime_vols**2
            a = m.regime_switch_per_year * k / (k - 1)
            return avg(var[self.regime], float(var.mean()), a)
        if m.process == "heston":
            theta = m.heston_theta if m.heston_theta is not None else m.vol**2
            return avg(np.maximum(self.var, 0.0), theta, m.heston_kappa)
        return self.state.vol.copy()

    def log_increment(self, vol: Arr) -> tuple[Arr, Arr, Arr]:
        """One step's log-price move per path at instantaneous `vol`: the diffusion's (its
        drift and the jumps' compensator in), the jumps' (0 but under Merton jumps) and the
        diffusion's normal draw (Heston's variance is correlated with it). `step` draws the
        path with it; the backtest's index history (`runner._jump_history`) too."""
        m, rng, dt, n = self.m, self.rng, self.dt, self.n
        z = rng.standard_normal(n)
        incr = (self.drift - 0.5 * vol * vol) * dt + np.sqrt(vol * vol * dt) * z
        jump = np.zeros(n)
        if m.process == "jumps" and m.jump_intensity_per_year > 0:
            lam = m.jump_intensity_per_year
            k = np.exp(m.jump_mean + 0.5 * m.jump_std**2) - 1.0
            counts = rng.poisson(lam * dt, n)
            jump = counts * m.jump_mean + np.sqrt(counts) * m.jump_std * rng.standard_normal(n)
            incr = incr - lam * k * dt
        return incr, jump, z

    def step(self) -> PathState:
        m, rng, dt, n = self.m, self.rng, self.dt, self.n
        s = self.state.spot
        vol = self.state.vol
        x0 = np.log(s)
        var_step = vol * vol * dt
        incr, jump, z = self.log_increment(vol)
        x1 = x0 + incr
        # Bridge extremes of the diffusive part, then the jump (at the end of the step).
        u1 = rng.random(n)
        u2 = rng.random(n)
        d = x1 - x0
        low = 0.5 * (x0 + x1 - np.sqrt(d * d - 2.0 * var_step * np.log(u1)))
        high = 0.5 * (x0 + x1 + np.sqrt(d * d - 2.0 * var_step * np.log(u2)))
        x1 = x1 + jump
        s1 = np.exp(x1)
        low = np.minimum(np.exp(low), s1)
        high = np.maximum(np.exp(high), s1)
        if self.regime is not None:
            vol = self._advance_vol(None)
        elif m.process == "heston":
            zv = m.heston_rho * z + np.sqrt(1.0 - m.heston_rho**2) * rng.standard_normal(n)
            vol = self._advance_vol(zv)
        self.state = PathState(s1, vol, low, high)
        return self.state

    @property
    def vol_moves(self) -> bool:
        """Whether the vol state changes along a path (more than one regime, or Heston)."""
        if self.regime is not None:
            return len(self.regime_vols) > 1
        return self.m.process == "heston"

    def backward(self, rng: np.random.Generator, step_years: float) -> PathGenerator:
        """A generator whose vol state starts at this one's and whose `step_vol` draws it
        `step_years` further into the past, each step, from its own `rng`: the history of a
        path that is in this state now (the vol-of-vol estimator's pre-history).

        Regimes: the switch rule (leave at rate q to one of the other k - 1 at random) has a
        symmetric transition matrix, so the chain is reversible with the uniform stationary
        law and the same chain run from the current regime is the exact conditional history.
        Heston: a one-dimensional diffusion (the CIR variance) is reversible with its
        stationary law, so the same variance process run from v0 is its history in law, up
        to the Euler scheme (full truncation, as forward) and taking v0 as a draw from the
        stationary law; the price is not needed (the marks depend on the variance only)."""
        back = PathGenerator(self.m, self.n, rng)
        back.dt = step_years
        if self.regime is not None:
            back.regime = self.regime.copy()
        elif self.m.process == "heston":
            back.var = self.var.copy()
        back.state = PathState(
            self.state.spot, self.state.vol.copy(), self.state.low, self.state.high
        )
        return back

    def step_vol(self) -> Arr:
        """Advance only the vol state one step (`backward`'s history; the price stays)."""
        if self.regime is None and self.m.process != "heston":
            return self.state.vol
        zv = self.rng.standard_normal(self.n) if self.regime is None else None
        self.state.vol = self._advance_vol(zv)
        return self.state.vol

    def _advance_vol(self, zv: Arr | None) -> Arr:
        """The vol state one step on (regimes: the switch draws; Heston: the variance's
        Euler step with its normal `zv`); the new instantaneous vol."""
        m, rng, dt, n = self.m, self.rng, self.dt, self.n
        if self.regime is not None:
            switch = rng.random(n) < (1.0 - np.exp(-m.regime_switch_per_year * dt))
            k = len(self.regime_vols)
            if k > 1:
                shift = rng.integers(1, k, n)
                self.regime = np.where(switch, (self.regime + shift) % k, self.regime)
            return self.regime_vols[self.regime]
        assert zv is not None
        theta = m.heston_theta if m.heston_theta is not None else m.vol**2
        vp = np.maximum(self.var, 0.0)
        self.var = (
            self.var + m.heston_kappa * (theta - vp) * dt + m.heston_xi * np.sqrt(vp * dt) * zv
        )
        out: Arr = np.sqrt(np.maximum(self.var, 1e-6))
        return out
