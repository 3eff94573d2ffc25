"""The backtest engine: the controller's kernel run over simulated paths.

Every policy (each point of each sweep) sees the same paths, option flow and fill draws
(common random numbers), so differences between policies are not sampling noise. Per step:
the market moves; resting maker orders fill if the intra-step extreme traded through them;
options expire and option flow arrives; the book's Greeks are computed for all paths at once
(`hedgerd.pricing.black_scholes`); then for each policy the SAME functions the live controller
uses (`kernel.band_for`, `kernel.plan_trades`, `kernel.route_greedy`, `kernel.round_to_lots`,
`kernel.depth_walk`, `kernel.maker_cost_frac`) decide and size the trades, vectorised across
paths.

Accounting (USD): the option book's P&L (premium, payoffs, flow, final mark) is shared by all
policies; each policy adds its hedge P&L (positions marked to the instruments' prices, cash at
the rate, funding paid) less its trading costs. Cost = fees + execution price versus the mid at
decision time (implementation shortfall: half spread, depth walk, and for maker orders the
price drift while resting, so adverse selection counts) + funding + basis roll-down. With a
fairly priced book and no drift, mean cost = -mean P&L up to sampling error.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any

import numpy as np
from numpy.typing import NDArray

from hedgerd.backtest.exact_band import (
    Criterion,
    ExactBand,
    StaticOption,
    solve,
    solve_regimes,
)
from hedgerd.backtest.paths import PathGenerator
from hedgerd.backtest.scenario import Scenario, ScenarioError
from hedgerd.hedging.config import HedgerdPolicy, PolicyConfig, TimerPolicy
from hedgerd.hedging.cross_venue import carry_holds
from hedgerd.hedging.flow import flow_estimates
from hedgerd.hedging.jumps import JUMP_WINDOW_MS, JumpVariancePaths
from hedgerd.hedging.kernel import (
    Band,
    BandContext,
    OptionArrays,
    band_for,
    cap_levels,
    cheapest_lambda,
    depth_walk,
    gamma_ahead,
    gamma_ahead_key,
    gamma_coherence,
    hedge_lambda,
    maker_cost_frac,
    maker_drift,
    plan_trades,
    round_to_lots,
    route_greedy,
)
from hedgerd.hedging.volvol import VOLVOL_SAMPLE_MS, VolOfVolPaths
from hedgerd.pricing.black import black_scholes

Arr = NDArray[np.float64]
YEAR_S = 365.0 * 86400.0
_YEAR_MS = YEAR_S * 1000.0


@dataclass(frozen=True, slots=True)
class PolicyRun:
    """One point of a sweep: a named policy config."""

    name: str
    family: str
    params: dict[str, Any]
    config: PolicyConfig
    baseline: bool = False
    # Set for the `exact` family: trade to the exact DP band of this risk aversion (1/USD)
    # instead of `band_for(config)`; `config` still sets triggers and sizing.
    exact_risk_aversion: float | None = None
    exact_criterion: Criterion = "exp_utility"


@dataclass(slots=True)
class RunResult:
    """Per-path outcomes of one policy run (USD, coin)."""

    run: PolicyRun
    pnl_usd: Arr
    cost_usd: Arr
    carry_usd: Arr
    trades: Arr
    turnover_usd: Arr
    max_abs_delta_coin: Arr
    #: (n, I) traded notional per instrument (USD), for the per-venue volume.
    turnover_by_instrument_usd: Arr | None = None


@dataclass(slots=True)
class _Instruments:
    taker_fee: Arr
    maker_fee: Arr
    half_spread: Arr
    carry_annual: Arr  # a long pays this fraction of notional per year (funding or basis)
    funding_annual: Arr
    basis_annual: Arr
    expiry_years: Arr  # inf for non-futures
    step: Arr
    minimum: Arr
    max_pos: Arr
    maker_ok: NDArray[np.bool_]
    lvl_offsets: Arr  # (L,) offsets of all levels
    lvl_sizes: Arr  # (L,)
    owner: NDArray[np.intp]  # (L,)
    down_from: Arr = field(default_factory=lambda: np.zeros(0))  # years; inf: never down
    down_until: Arr = field(default_factory=lambda: np.zeros(0))  # years
    #: Per instrument: the cost of moving later a unit of position a trade leaves there
    #: (`hedging.cross_venue.move_later_frac`: weight x (taker fee + half spread)), charged on
    #: the part of a trade that grows the position (as live, on one venue and across venues).
    move_later: Arr = field(default_factory=lambda: np.zeros(0))

    @property
    def count(self) -> int:
        return len(self.taker_fee)

    def up(self, now: float) -> NDArray[np.bool_]:
        """(I,) whether each instrument's venue takes orders at `now` (years)."""
        if self.down_from.size == 0:
            return np.ones(self.count, dtype=bool)
        return ~((now >= self.down_from - 1e-12) & (now < self.down_until - 1e-12))


def _instruments(sc: Scenario) -> _Instruments:
    specs = sc.instruments
    weight = sc.cost.move_later_weight
    offsets: list[float] = []
    sizes: list[float] = []
    owner: list[int] = []
    for i, s in enumerate(specs):
        for j in range(s.depth_levels):
            offsets.append(s.half_spread + j * s.level_step)
            sizes.append(s.level_size_coin)
            owner.append(i)

    def arr(vals: list[float]) -> Arr:
        return np.asarray(vals, dtype=np.float64)

    funding = arr([s.funding_8h * 3 * 365 if s.kind == "perpetual" else 0.0 for s in specs])
    basis = arr([s.basis_annual if s.kind == "future" else 0.0 for s in specs])
    return _Instruments(
        taker_fee=arr([s.taker_fee for s in specs]),
        maker_fee=arr([s.maker_fee for s in specs]),
        half_spread=arr([s.half_spread for s in specs]),
        carry_annual=funding + basis,
        funding_annual=funding,
        basis_annual=basis,
        expiry_years=arr(
            [s.expiry_days / 365.0 if s.expiry_days is not None else math.inf for s in specs]
        ),
        step=arr([s.amount_step_coin for s in specs]),
        minimum=arr([s.min_amount_coin for s in specs]),
        max_pos=arr([s.max_position_coin or math.inf for s in specs]),
        maker_ok=np.asarray([s.maker_allowed for s in specs]),
        lvl_offsets=arr(offsets),
        lvl_sizes=arr(sizes),
        owner=np.asarray(owner, dtype=np.intp),
        down_from=arr(
            [s.down_from_days / 365.0 if s.down_from_days is not None else math.inf for s in specs]
        ),
        down_until=arr(
            [
                (s.down_from_days + s.down_hours / 24.0) / 365.0
                if s.down_from_days is not None
                else math.inf
                for s in specs
            ]
        ),
        move_later=arr([weight * (s.taker_fee + s.half_spread) for s in specs]),
    )


@dataclass(slots=True)
class _Book:
    """Options of all paths: static ones (shared) and flow slots (per path)."""

    is_call: NDArray[np.bool_]  # (n, m)
    strike: Arr
    expiry: Arr  # years from start
    qty: Arr
    flow_time: Arr  # years; inf for static options / unused slots
    flow_moneyness: Arr
    flow_qty: Arr
    live: NDArray[np.bool_] = field(default_factory=lambda: np.zeros((0, 0), dtype=bool))


def _book(sc: Scenario, n: int, rng: np.random.Generator) -> _Book:
    static = sc.options
    f = sc.flow
    horizon = sc.market.horizon_days / 365.0
    slots = f.max_trades if f.trades_per_day > 0 else 0
    m = len(static) + slots
    is_call = np.zeros((n, m), dtype=bool)
    strike = np.full((n, m), sc.market.spot_usd)
    expiry = np.full((n, m), np.inf)
    qty = np.zeros((n, m))
    ftime = np.full((n, m), np.inf)
    fmny = np.ones((n, m))
    fqty = np.zeros((n, m))
    for j, o in enumerate(static):
        is_call[:, j] = o.type == "call"
        strike[:, j] = o.strike_usd
        expiry[:, j] = o.expiry_days / 365.0
        qty[:, j] = o.qty_coin
    if slots:
        k = len(static)
        counts = np.minimum(rng.poisson(f.trades_per_day * sc.market.horizon_days, n), slots)
        times = np.sort(rng.random((n, slots)) * horizon, axis=1)
        used = np.arange(slots)[None, :] < counts[:, None]
        ftime[:, k:] = np.where(used, times, np.inf)
        fmny[:, k:] = rng.uniform(f.moneyness[0], f.moneyness[1], (n, slots))
        side = np.where(rng.random((n, slots)) < f.short_bias, -1.0, 1.0)
        fqty[:, k:] = side * np.abs(rng.normal(0.0, f.qty_coin_std, (n, slots)))
        choice = rng.integers(0, len(f.expiry_days), (n, slots))
        expiry[:, k:] = np.asarray(f.expiry_days)[choice] / 365.0  # relative until traded
        is_call[:, k:] = fmny[:, k:] >= 1.0  # OTM options: calls above spot, puts below
    live = np.zeros((n, m), dtype=bool)
    live[:, : len(static)] = True
    return _Book(is_call, strike, expiry, qty, ftime, fmny, fqty, live)


@dataclass(slots=True)
class _State:
    """Per-path state of one policy run."""

    pos: Arr  # (n, I) positions, coin of each instrument
    cash: Arr  # hedge cash, USD
    cost: Arr
    carry: Arr
    trades: Arr
    turnover: Arr
    maxdelta: Arr
    turnover_i: Arr  # (n, I) traded notional per instrument, USD
    last_s: Arr
    last_spot: Arr
    pend_q: Arr  # resting maker order, coin of instrument (signed)
    pend_i: NDArray[np.intp]
    pend_px: Arr
    pend_ref: Arr  # sum of qty x mid at decision (USD), for the shortfall
    pend_t: Arr


def _new_state(n: int, k: int) -> _State:
    z = np.zeros(n)
    return _State(
        pos=np.zeros((n, k)),
        cash=z.copy(),
        cost=z.copy(),
        carry=z.copy(),
        trades=z.copy(),
        turnover=z.copy(),
        maxdelta=z.copy(),
        turnover_i=np.zeros((n, k)),
        last_s=np.full(n, np.nan),
        last_spot=np.full(n, np.nan),
        pend_q=z.copy(),
        pend_i=np.zeros(n, dtype=np.intp),
        pend_px=z.copy(),
        pend_ref=z.copy(),
        pend_t=z.copy(),
    )


def run_backtest(
    sc: Scenario,
    runs: list[PolicyRun],
    paths: int,
    seed: int,
) -> tuple[list[RunResult], Arr]:
    """Run every policy over the same `paths` paths. Returns the results and the option
    book's own P&L per path (USD)."""
    rng = np.random.default_rng(seed)
    flow_rng = np.random.default_rng([seed, 1])
    mk = sc.market
    n = paths
    dt = mk.dt_years
    steps = mk.steps
    horizon = steps * dt
    ins = _instruments(sc)
    k = ins.count
    book = _book(sc, n, flow_rng)
    gen = PathGenerator(mk, n, rng)
    hold_years = sc.cost.expected_holding_s / YEAR_S
    lam = cheapest_lambda(ins.taker_fee, ins.half_spread)
    # Per level: fee and offset (the carry, per path, follows the book's horizon).
    marg_base = ins.taker_fee[ins.owner] + ins.lvl_offsets
    maker_enabled = sc.execution.maker_allowed and bool(ins.maker_ok.any())
    # The venue's settlement is on the terminal price here: no settlement window in the sim.
    configs = [r.config.model_copy(update={"settlement_window_s": 0.0}) for r in runs]
    states = [_new_state(n, k) for _ in runs]
    exact = [_exact_band(sc, r.exact_risk_aversion, lam, r.exact_criterion) for r in runs]
    grow = math.exp(mk.rate * dt)
    ahead_keys = {key for c in configs if (key := gamma_ahead_key(c)) is not None}
    # The option flow's delta jumps, for the policies whose band takes them (`flow_weight`):
    # each arrival's time (ms from the start; inf until it arrives) and the book's delta change.
    flow_on = sc.flow.trades_per_day > 0 and any(
        getattr(c, "flow_weight", 0.0) > 0.0 for c in configs
    )
    jump_ms = np.full(book.qty.shape, np.inf)
    jump_coin = np.zeros(book.qty.shape)
    # The marks' vol-of-vol, for the policies whose band weighs its refinements by it
    # (`vov_ref`) or widens a long book's shift cap by it (`shift_cap_vov_ref`), one
    # estimator per window: fed the mark vol at every decision, as the daemon (which feeds it
    # whatever the policy: a policy that reads xi must get it here too).
    vov = {
        c.vov_window_s: VolOfVolPaths(dt * _YEAR_MS, c.vov_window_s * 1000.0)
        for c in configs
        if isinstance(c, HedgerdPolicy) and (c.vov_ref > 0.0 or c.shift_cap_vov_ref > 0.0)
    }
    # The index's jump variance over the marks', for the policies whose centre takes it
    # (`jump_shift_power`): fed the index and the mark vol at every decision, as the daemon.
    jump_noise = {
        c.jump_noise_sd
        for c in configs
        if isinstance(c, HedgerdPolicy) and c.jump_shift_power > 0.0
    }
    jumps = JumpVariancePaths(dt * _YEAR_MS) if jump_noise else None
    if vov and mk.mark_history and mk.greeks_vol != "fixed" and gen.vol_moves:
        # Its own stream ([seed, 2]): the paths and the flow draw exactly as without it.
        _vov_history(vov, mk, gen, np.random.default_rng([seed, 2]), horizon)
    if jumps is not None and mk.mark_history:
        _jump_history(jumps, mk, gen, np.random.default_rng([seed, 3]), horizon)

    # The option book: premium received/paid at the start (cash), shared by all policies.
    spot = gen.state.spot
    vol = gen.state.vol
    g = _greeks(book, spot, _greeks_vol(mk, gen, vol, horizon), 0.0, mk)
    opt_cash = -np.sum(np.where(book.live, book.qty * g.price, 0.0), axis=1)

    for t in range(steps + 1):
        now = t * dt
        if t > 0:
            st = gen.step()
            spot, vol, low, high = st.spot, st.vol, st.low, st.high
            opt_cash *= grow
            for s in states:
                s.cash *= grow
                _accrue_carry(s, ins, spot, now, dt)
                if maker_enabled:
                    _maker_fills(s, ins, spot, low, high, now, sc.execution.maker_fill_through)
            # Expiries: cash-settled at the price now.
            expiring = book.live & (book.expiry <= now + 1e-12)
            if expiring.any():
                payoff = np.where(
                    book.is_call,
                    np.maximum(spot[:, None] - book.strike, 0.0),
                    np.maximum(book.strike - spot[:, None], 0.0),
                )
                opt_cash += np.sum(np.where(expiring, book.qty * payoff, 0.0), axis=1)
                book.live &= ~expiring
        gvol = _greeks_vol(mk, gen, vol, horizon - now)
        # Option flow arriving now: struck relative to spot, traded at model value.
        arriving = (book.flow_time <= now + 1e-12) & ~book.live & (book.flow_qty != 0.0)
        arriving &= book.flow_time > now - dt + 1e-12
        if arriving.any():
            rows, cols = np.nonzero(arriving)
            book.strike[rows, cols] = np.round(spot[rows] * book.flow_moneyness[rows, cols], 2)
            book.expiry[rows, cols] = now + book.expiry[rows, cols]
            book.qty[rows, cols] = book.flow_qty[rows, cols]
            book.live[rows, cols] = True
            gg = black_scholes(
                book.is_call[rows, cols],
                spot[rows],
                book.strike[rows, cols],
                book.expiry[rows, cols] - now,
                gvol[rows],
                mk.rate,
            )
            np.add.at(opt_cash, rows, -book.qty[rows, cols] * gg.price)
            jump_ms[rows, cols] = now * _YEAR_MS
            jump_coin[rows, cols] = book.qty[rows, cols] * gg.delta
        if t == steps:
            break
        g = _greeks(book, spot, gvol, now, mk)
        live_q = np.where(book.live, book.qty, 0.0)
        delta_book = np.sum(live_q * g.delta, axis=1)
        gamma_w = live_q * g.gamma
        gamma = np.sum(gamma_w, axis=1)
        vanna = np.sum(live_q * g.vanna, axis=1)
        ag = np.abs(gamma_w)
        tau_all = np.where(book.live, np.maximum(book.expiry - now, 0.0), 0.0)
        wsum = np.sum(ag, axis=1)
        tau_eff = np.where(
            wsum > 0,
            np.sum(ag * tau_all, axis=1) / np.maximum(wsum, 1e-300),
            np.max(tau_all, axis=1),
        )
        # As the live controller: the band's cost and carry are those of the instrument the
        # hedge would be held on to the book's horizon (per path).
        lam_t, carry_t = hedge_lambda(
            ins.taker_fee, ins.half_spread, ins.carry_annual, -np.sign(delta_book), tau_eff
        )
        ctx = BandContext(spot, gamma, vanna, gvol, tau_eff, mk.rate, lam_t, carry_t, delta_book)
        ctx.gamma_coherence = gamma_coherence(gamma, wsum)  # for `shift_coherence`
        jump_r: dict[float, tuple[Any, Any, Any]] = {}
        if jumps is not None:
            jumps.observe(spot, gvol)
            for noise in jump_noise:
                jump_r[noise] = jumps.estimate(noise)
        if flow_on:
            # Only the arrivals seen so far (time <= now), as the live estimator.
            fv, fj = flow_estimates(jump_ms, jump_coin, now * _YEAR_MS)
            ctx.flow_var_coin2_per_year, ctx.flow_jump_coin = fv, fj
        xi = {}
        for w, est in vov.items():
            est.observe(gvol)
            xi[w] = est.estimate()
        options = OptionArrays(book.is_call, book.strike, tau_all, live_q)
        ahead = {key: gamma_ahead(key, options, spot, gvol) for key in ahead_keys}
        factor = _price_factor(ins, now)  # (k,) instrument price / spot
        for run_cfg, s, xb in zip(configs, states, exact, strict=True):
            key = gamma_ahead_key(run_cfg)
            ctx.gamma_ahead_coin_per_usd = ahead[key] if key is not None else None
            if xi:
                ctx.vol_of_vol_per_sqrt_year = xi.get(getattr(run_cfg, "vov_window_s", 0.0), 0.0)
            if jump_r:
                r_k = jump_r.get(getattr(run_cfg, "jump_noise_sd", -1.0), (1.0, 0.0, 0.0))
                ctx.jump_var_ratio, ctx.jump_skew, ctx.jump_rate_per_year = r_k
            override = None
            if xb is not None:
                h_lo, h_hi = xb.edges(t, spot, gen.regime)
                half = 0.5 * (h_hi - h_lo)
                override = Band(delta_book + 0.5 * (h_lo + h_hi), half, half)
            _decide_and_trade(
                run_cfg,
                s,
                ctx,
                ins,
                factor,
                delta_book,
                spot,
                now,
                marg_base,
                maker_enabled,
                sc.cost.maker_fill_probability,
                hold_years,
                sc.cost.maker_fill_delay_s,
                override,
            )

    # End: mark what is left of the book, close the hedges.
    g = _greeks(book, spot, gvol, horizon, mk)
    opt_cash += np.sum(np.where(book.live, book.qty * g.price, 0.0), axis=1)
    factor = _price_factor(ins, horizon)
    results = []
    for run, s in zip(runs, states, strict=True):
        _cancel(s, s.pend_q != 0.0, spot, factor)
        if sc.execution.unwind_at_end:
            for i in range(k):
                q = -s.pos[:, i]
                if np.any(q != 0.0):
                    _execute_taker_on(s, ins, i, q, spot * factor[i])
        value = np.sum(s.pos * (spot[:, None] * factor[None, :]), axis=1)
        pnl = opt_cash + s.cash + value
        results.append(
            RunResult(
                run,
                pnl,
                s.cost + s.carry,
                s.carry,
                s.trades,
                s.turnover,
                s.maxdelta,
                s.turnover_i,
            )
        )
    return results, opt_cash


def _exact_band(
    sc: Scenario, risk_aversion: float | None, lam: float, criterion: Criterion
) -> ExactBand | None:
    """The exact DP band of the scenario's static book (GBM at `market.vol`, zero rate; for
    other processes it is that GBM's band, a reference rather than the optimum), or None."""
    if risk_aversion is None:
        return None
    mk = sc.market
    if sc.flow.trades_per_day > 0 or not sc.options or mk.rate != 0.0:
        raise ScenarioError(
            f"{sc.name}: the exact band needs a static option book (no option flow) and rate 0"
        )
    opts = tuple(
        StaticOption(o.type == "call", o.strike_usd, o.expiry_days / 365.0, o.qty_coin)
        for o in sc.options
    )
    if mk.process == "regimes" and criterion == "mean_variance":
        # The hedger knows the regime (it marks at its vol): the optimum knows it too.
        return solve_regimes(
            opts,
            mk.spot_usd,
            tuple(mk.regime_vols),
            mk.regime_switch_per_year,
            mk.dt_years,
            mk.steps,
            lam,
            risk_aversion,
        )
    return solve(
        opts, mk.spot_usd, mk.vol, mk.dt_years, mk.steps, lam, risk_aversion, criterion=criterion
    )


def _vov_history(
    vov: dict[float, VolOfVolPaths],
    mk: Any,
    gen: PathGenerator,
    rng: np.random.Generator,
    horizon: float,
) -> None:
    """Feed each vol-of-vol estimator the mark vols of its window before t = 0
    (`MarketSpec.mark_history`), oldest first, as a desk running for that long has seen them.

    The vol state is drawn backward from each path's start (`PathGenerator.backward`) one
    estimator sample apart (the estimator keeps one mark per `VOLVOL_SAMPLE_MS`: with finer
    steps each drawn mark is fed for that many steps, and only its first is sampled, as it
    would be along the path), and marked as the runner marks along the path (`_greeks_vol`,
    the book's horizon that much further away)."""
    every, step = _history_step(mk)
    counts = {w: max(1, math.ceil(w / YEAR_S / step - 1e-9)) for w in vov}
    count = max(counts.values())
    back = gen.backward(rng, step)
    marks = np.empty((count, gen.n))
    for j in range(count):
        back.step_vol()
        marks[count - 1 - j] = _greeks_vol(mk, back, back.state.vol, horizon + (j + 1) * step)
    for w, est in vov.items():
        for row in marks[count - counts[w] :]:
            for _ in range(every):
                est.observe(row)


def _history_step(mk: Any) -> tuple[int, float]:
    """(steps per estimator sample, years between the histories' points): one point per
    `VOLVOL_SAMPLE_MS`, each fed for that many path steps (only its first is sampled)."""
    every = max(1, math.ceil(VOLVOL_SAMPLE_MS / (mk.dt_years * _YEAR_MS) - 1e-9))
    return every, every * mk.dt_years


def _jump_history(
    jumps: JumpVariancePaths,
    mk: Any,
    gen: PathGenerator,
    rng: np.random.Generator,
    horizon: float,
) -> None:
    """Feed the jump estimator the index and the marks of its window before t = 0
    (`MarketSpec.mark_history`), oldest first, as the daemon seeds it at start (its journal's
    samples, else the venue's index history): a 3-day path does not start with a jump
    estimate that has seen nothing and ramps in over its first day.

    One point per estimator sample (as `_vov_history`: each fed for that many steps, its first
    sampled), back from each path's start: the vol state drawn backward
    (`PathGenerator.backward`), the log return over each step drawn as the path draws it
    (the diffusion at that vol, the scenario's compensated jumps). A path's returns are
    independent of each other given the vol, so that is the history in law; Heston's
    correlation of the price with the variance is not kept (the estimator reads the returns'
    sizes, not their co-movement with the vol)."""
    every, step = _history_step(mk)
    # The window's returns, the one before its first (its bipower pair) and its start point.
    count = math.ceil(JUMP_WINDOW_MS / _YEAR_MS / step - 1e-9) + 2
    back = gen.backward(rng, step)
    ln = np.empty((count, gen.n))
    marks = np.empty((count, gen.n))
    x = np.log(gen.state.spot)
    for j in range(count):
        vol = back.step_vol()  # at the step's start, as the path draws it (`PathGenerator.step`)
        incr, jump, _ = back.log_increment(vol)
        x = x - (incr + jump)
        ln[count - 1 - j] = x
        marks[count - 1 - j] = _greeks_vol(mk, back, vol, horizon + (j + 1) * step)
    for row_ln, row_mark in zip(ln, marks, strict=True):
        index = np.exp(row_ln)
        for _ in range(every):
            jumps.observe(index, row_mark)


def _greeks_vol(mk: Any, gen: PathGenerator, vol: Arr, rest_years: float) -> Arr:
    """The vol the hedger prices with (see `MarketSpec.greeks_vol`), per path."""
    if mk.greeks_vol == "instantaneous":
        return vol
    if mk.greeks_vol == "expected":
        return gen.expected_vol(max(rest_years, mk.dt_years))
    return np.full(vol.shape, mk.vol)


def _greeks(book: _Book, spot: Arr, vol: Arr, now: float, mk: Any) -> Any:
    tau = np.where(book.live, np.maximum(book.expiry - now, 0.0), 0.0)
    with np.errstate(all="ignore"):
        g = black_scholes(book.is_call, spot[:, None], book.strike, tau, vol[:, None], mk.rate)
    # Dead slots (and options expiring exactly now) contribute nothing.
    for a in (g.price, g.delta, g.gamma, g.vanna):
        np.copyto(a, 0.0, where=~book.live | ~np.isfinite(a))
    return g


def _price_factor(ins: _Instruments, now: float) -> Arr:
    """Instrument price / spot: 1 + remaining basis for futures, 1 otherwise."""
    remaining = np.where(
        np.isfinite(ins.expiry_years), np.maximum(ins.expiry_years - now, 0.0), 0.0
    )
    return 1.0 + ins.basis_annual * remaining


def _accrue_carry(s: _State, ins: _Instruments, spot: Arr, now: float, dt: float) -> None:
    # Funding is paid (cash); basis roll-down is already in the futures' prices, so it is only
    # counted as cost (reporting), not paid again.
    if not (ins.funding_annual.any() or ins.basis_annual.any()):
        return
    notional = s.pos * spot[:, None]
    funding = np.sum(notional * ins.funding_annual[None, :], axis=1) * dt
    basis = np.sum(notional * ins.basis_annual[None, :], axis=1) * dt
    s.cash -= funding
    s.carry += funding + basis


def _maker_fills(
    s: _State, ins: _Instruments, spot: Arr, low: Arr, high: Arr, now: float, through: float
) -> None:
    active = s.pend_q != 0.0
    if not active.any():
        return
    idx = np.flatnonzero(active)
    i = s.pend_i[idx]
    q = s.pend_q[idx]
    px = s.pend_px[idx]
    f = _price_factor(ins, now)[i]
    hs = ins.half_spread[i]
    buy = q > 0
    filled = np.where(
        buy, low[idx] * f <= px * (1.0 - through * hs), high[idx] * f >= px * (1.0 + through * hs)
    )
    filled &= ins.up(now)[i]  # a venue that is down fills nothing
    if not filled.any():
        return
    j = idx[filled]
    qj, pj, ij = q[filled], px[filled], i[filled]
    fee = np.abs(qj) * pj * ins.maker_fee[ij]
    s.pos[j, ij] += qj
    s.cash[j] -= qj * pj + fee
    s.cost[j] += (qj * pj - s.pend_ref[j]) + fee
    s.trades[j] += 1
    s.turnover[j] += np.abs(qj) * pj
    s.turnover_i[j, ij] += np.abs(qj) * pj
    s.pend_q[j] = 0.0
    s.pend_ref[j] = 0.0


def _cancel(s: _State, mask: NDArray[np.bool_], spot: Arr, factor: Arr) -> None:
    """Cancel resting maker orders where `mask`. Their opportunity cost (implementation
    shortfall of the unexecuted part: quantity x (mid now - mid at decision)) is a cost: the
    hedge the policy decided on was not held while the price moved."""
    if not mask.any():
        return
    j = np.flatnonzero(mask)
    mid = spot[j] * factor[s.pend_i[j]]
    s.cost[j] += s.pend_q[j] * mid - s.pend_ref[j]
    s.pend_q[j] = 0.0
    s.pend_ref[j] = 0.0


def _execute_taker_on(s: _State, ins: _Instruments, i: int, q: Arr, mid: Arr) -> None:
    """Taker close of `q` (coin, signed, per path) on instrument i at mid `mid`, all of it.

    What the listed book cannot take is taken from further books of the same depth, as a
    hedge beyond depth waits for the next decision's book. Why: the close at the end used to
    stop at the listed depth and mark the rest at mid for free, so a hedge concentrated on a
    thin book closed cheaper than one spread over deep books (issue 17: a router that split
    over two venues paid for a close that one venue alone skipped)."""
    mine = ins.owner == i
    offsets, sizes = ins.lvl_offsets[mine], ins.lvl_sizes[mine]
    depth = float(np.sum(sizes))
    size = np.abs(q)
    books = np.floor(size / depth + 1e-12)
    _, full_walk, _ = depth_walk(np.full(1, depth), offsets, sizes)
    rest, walk, _ = depth_walk(size - books * depth, offsets, sizes)
    filled = books * depth + rest
    walk = walk + books * full_walk[0]
    qq = np.sign(q) * filled
    tx = (walk + filled * ins.taker_fee[i]) * mid
    s.pos[:, i] += qq
    s.cash -= qq * mid + tx
    s.cost += tx
    s.trades += filled > 0
    s.turnover += filled * mid
    s.turnover_i[:, i] += filled * mid


def _reducing(pos: Arr, side: Arr, factor: Arr) -> Arr:
    """(rows, I) coin of delta a trade on `side` (+1/-1 per row) can take on each instrument
    before it stops shrinking the position there (`cross_venue.reducing_coin`, per path)."""
    return np.maximum(-side[:, None] * pos, 0.0) * factor[None, :]


def _decide_and_trade(
    policy: PolicyConfig,
    s: _State,
    ctx: BandContext,
    ins: _Instruments,
    factor: Arr,
    delta_book: Arr,
    spot: Arr,
    now: float,
    marg_base: Arr,
    maker_enabled: bool,
    p_fill: float,
    hold_years: float,
    fill_delay_s: float,
    band_override: Band | None = None,
) -> None:
    now_s = now * YEAR_S
    maker_on = maker_enabled and policy.maker.enabled and not isinstance(policy, TimerPolicy)
    if maker_on:
        # A resting order past its timeout is cancelled; this evaluation re-decides.
        stale = (s.pend_q != 0.0) & (now_s - s.pend_t >= policy.maker.timeout_s - 1e-6)
        _cancel(s, stale, spot, factor)
    up = ins.up(now)
    if maker_on and not up.all():
        # A resting order on a venue that went down is gone (cancel-on-disconnect).
        _cancel(s, (s.pend_q != 0.0) & ~up[s.pend_i], spot, factor)
    hedge_delta = s.pos @ factor
    pend_delta = s.pend_q * factor[s.pend_i]
    net = delta_book + hedge_delta + pend_delta
    band = band_for(policy, ctx) if band_override is None else band_override
    plan = plan_trades(
        policy,
        band,
        net,
        now_s,
        s.last_s,
        spot,
        s.last_spot,
        maker_on,
        maker_drift(ctx, fill_delay_s) if maker_on else 0.0,
    )
    taker = plan.taker_coin
    maker = plan.maker_coin
    if maker_on:
        want = taker + maker
        opposite = s.pend_q * want < 0.0
        _cancel(s, opposite, spot, factor)

    tidx = np.flatnonzero(taker != 0.0)
    if tidx.size:
        q = taker[tidx]
        side = np.sign(q)
        # As the live router (`hedging.cross_venue`): each instrument's levels split where the
        # trade stops reducing its position; the growing part bears the cost of moving it
        # later (a hedge is unwound where it sits rather than opened elsewhere against it),
        # and each part carries over its own holding time (the book's horizon on the hedge's
        # side).
        hold_g, hold_r = carry_holds(side, s.pos[tidx] @ factor, hold_years, ctx.tau_years[tidx])
        carry = side[:, None] * ins.carry_annual[ins.owner][None, :]
        marg = marg_base[None, :] + carry * hold_r[:, None]
        marg_g = marg_base[None, :] + carry * hold_g[:, None] + ins.move_later[ins.owner][None, :]
        # A venue that is down offers no depth this evaluation: routing skips it.
        sizes = np.broadcast_to(ins.lvl_sizes * up[ins.owner], marg.shape)
        if np.isfinite(ins.max_pos).any():
            room = np.maximum(ins.max_pos[None, :] - side[:, None] * s.pos[tidx], 0.0)
            room = room * factor[None, :]
            sizes = np.concatenate(
                [cap_levels(sizes[:, ins.owner == i], room[:, i]) for i in range(ins.count)],
                axis=1,
            )
            marg = np.concatenate([marg[:, ins.owner == i] for i in range(ins.count)], axis=1)
            marg_g = np.concatenate([marg_g[:, ins.owner == i] for i in range(ins.count)], axis=1)
        red = _reducing(s.pos[tidx], side, factor)
        red_sizes = np.concatenate(
            [cap_levels(sizes[:, ins.owner == i], red[:, i]) for i in range(ins.count)],
            axis=1,
        )
        sizes = np.concatenate([red_sizes, sizes - red_sizes], axis=1)
        marg = np.concatenate([marg, marg_g], axis=1)
        owner = np.concatenate([ins.owner, ins.owner])
        per, _ = route_greedy(np.abs(q), marg, sizes, owner, ins.count)
        any_trade = np.zeros(tidx.size, dtype=bool)
        for i in range(ins.count):
            qi = round_to_lots(side * per[:, i] / factor[i], ins.step[i], ins.minimum[i])
            hit = qi != 0.0
            if not hit.any():
                continue
            rows = tidx[hit]
            mid = spot[rows] * factor[i]
            mine = ins.owner == i
            filled, walk, _ = depth_walk(
                np.abs(qi[hit]), ins.lvl_offsets[mine], ins.lvl_sizes[mine]
            )
            qq = np.sign(qi[hit]) * filled
            tx = (walk + filled * ins.taker_fee[i]) * mid
            s.pos[rows, i] += qq
            s.cash[rows] -= qq * mid + tx
            s.cost[rows] += tx
            s.trades[rows] += 1
            s.turnover[rows] += filled * mid
            s.turnover_i[rows, i] += filled * mid
            any_trade |= hit
        done = tidx[any_trade]
        s.last_s[done] = now_s
        s.last_spot[done] = spot[done]

    if maker_on:
        midx = np.flatnonzero(maker != 0.0)
        if midx.size:
            q = maker[midx]
            side = np.sign(q)
            # As live (`router.route_maker`): the growing part of the order bears the cost of
            # moving it later, and each part carries over its own holding time.
            hold_g, hold_r = carry_holds(
                side, s.pos[midx] @ factor, hold_years, ctx.tau_years[midx]
            )
            red = _reducing(s.pos[midx], side, factor)
            size = np.abs(q)[:, None]
            grows = np.maximum(size - red, 0.0) / size
            hold = grows * hold_g[:, None] + (1.0 - grows) * hold_r[:, None]
            carry = side[:, None] * ins.carry_annual[None, :] * hold
            mc = maker_cost_frac(p_fill, ins.maker_fee, ins.taker_fee, ins.half_spread, carry)
            mc = mc + grows * ins.move_later[None, :]
            mc = np.where((ins.maker_ok & up)[None, :], mc, np.inf)
            best = np.argmin(mc, axis=1)
            resting = s.pend_q[midx] != 0.0
            inst = np.where(resting, s.pend_i[midx], best)
            f = factor[inst]
            qi = round_to_lots(q / f, ins.step[inst], ins.minimum[inst])
            # Every venue that allows posting is down: no order this evaluation.
            ok = (qi != 0.0) & np.isfinite(mc[np.arange(midx.size), inst])
            rows = midx[ok]
            inst = inst[ok]
            qi = qi[ok]
            mid = spot[rows] * factor[inst]
            hs = ins.half_spread[inst]
            s.pend_i[rows] = inst
            s.pend_q[rows] += qi
            s.pend_ref[rows] += qi * mid
            s.pend_px[rows] = np.where(s.pend_q[rows] > 0, mid * (1.0 - hs), mid * (1.0 + hs))
            s.pend_t[rows] = now_s
            s.last_s[rows] = now_s
            s.last_spot[rows] = spot[rows]

    filled_net = delta_book + s.pos @ factor
    np.maximum(s.maxdelta, np.abs(filled_net), out=s.maxdelta)
