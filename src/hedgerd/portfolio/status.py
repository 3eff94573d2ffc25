"""The status document (`hedgerctl status`, the control API) and the one-line status, from
the hedge loop's statistics, the account's feed and the executor's open orders."""

from __future__ import annotations

import asyncio
import math
import sys
from collections.abc import Callable, Mapping
from typing import Any

from hedgerd.control.views import summarize_freshness
from hedgerd.hedging.inputs import UnderlyingRisk
from hedgerd.hedging.jumps import JUMP_COUNT_SD, JUMP_SKEW_MAX
from hedgerd.portfolio.hedge_loop import HedgeLoop
from hedgerd.portfolio.scope import PortfolioScope, PortfolioService

#: The units of the status document's figures, for scripts reading `hedgerctl status --json`.
STATUS_UNITS: Mapping[str, str] = {
    "delta, band, target": "coin of the underlying, in the configured numeraire",
    "gamma": "coin per USD of index move",
    "vega": "USD per 1.00 of vol (divide by 100 for a vol point)",
    "theta": "USD per day",
    "hedge_cost_usd": "USD",
    "time_in_band": "fraction of the evaluations with the delta inside the band",
    "amount, limit_price": "the order's amount_unit and price_unit (usd, or coin of underlying)",
    "age_s, oldest_age_s": "seconds",
    "*_ms": "UTC epoch milliseconds on the daemon's clock (the simulator's in paper mode)",
    "speed": "daemon seconds per wall second",
    "accounts.*.margin": "equity and maintenance margin in the settlement currency; "
    "margin_use = maintenance / equity",
    "accounts.*.hedge_positions": "each instrument's amount_unit",
    "accounts.*.hedge_delta_coin": "coin of the underlying (where the hedge delta sits)",
    "band_inputs.vol": "fraction per year (the book's gamma-weighted mark vol; 0.5 = 50 %)",
    "band_inputs.vol_of_vol_per_sqrt_year": "1/sqrt(year) (the marks' realised vol-of-vol)",
    "band_inputs.jump_var_ratio": "dimensionless, >= 1 (the index's variance over the marks'; "
    "1: no jumps seen)",
    "band_inputs.jump_skew": f"a signed log return, dimensionless, within +-{JUMP_SKEW_MAX} (the "
    "jumps' lean: sum r^3 over the index's variance where a jump is found; 0: none found)",
    "band_inputs.jump_rate_per_year": f"jumps per year (the index's returns beyond "
    f"{JUMP_COUNT_SD:g} of the marks' sd in the window, counted; 0: no jump found)",
    "band_inputs.gamma_coherence": "dimensionless, in [0, 1] (|net gamma| / gross gamma of the "
    "book's options)",
    "band_inputs.gamma_ahead_coin_per_usd": "coin per USD of index move (the options' "
    "Black-Scholes gamma averaged over the spot range ahead: net, or its magnitude under the "
    "policy's gamma_average = abs)",
    "band_inputs.flow_var_coin2_per_year": "coin^2 per year (the delta variance rate of the "
    "book's own option trades)",
    "band_inputs.*": "null: no evaluation yet, or the figure not computed for the policy",
}

#: The hedge band's market inputs in the status document (`UnderlyingRisk`'s fields of the
#: same names), in the order `hedgerctl status` shows them.
BAND_INPUTS: tuple[str, ...] = (
    "vol",
    "vol_of_vol_per_sqrt_year",
    "jump_var_ratio",
    "jump_skew",
    "jump_rate_per_year",
    "gamma_coherence",
    "gamma_ahead_coin_per_usd",
    "flow_var_coin2_per_year",
)


class StatusReport(PortfolioService):
    """Assembles the status document; `orders_sent_total`: the journal's order count, as
    the daemon's board tick last read it."""

    def __init__(
        self,
        scope: PortfolioScope,
        hedge_loop: HedgeLoop,
        orders_sent_total: Callable[[], int],
    ) -> None:
        super().__init__(scope)
        # The policies in force are the hedge loop's (overrides included).
        self.policies = hedge_loop.policies
        self.hedge_loop = hedge_loop
        self._orders_sent_total = orders_sent_total

    async def run_line_loop(self) -> None:
        tty = sys.stderr.isatty()
        interval = 0.5 if tty else self.config.daemon.status_interval_s
        while True:
            await asyncio.sleep(interval)
            line = self.status_line()
            if tty:
                sys.stderr.write("\r\x1b[2K" + line)
            else:
                sys.stderr.write(line + "\n")
            sys.stderr.flush()

    def status_line(self) -> str:
        """One line: state, per underlying delta against its band, hedges, cost."""
        state = (
            self.shared.trading.state.value.upper()
            if self.shared.trading is not None
            else "STARTING"
        )
        parts = [f"hedgerd {state}"]
        for u, st in self.stats.per_underlying.items():
            lo, _target, hi = st.last_band
            share = st.in_band_samples / st.samples if st.samples else math.nan
            parts.append(
                f"{u} Δ {st.last_delta_coin:+.3f} [{lo:+.3f}, {hi:+.3f}] "
                f"in band {share:.0%} hedges {st.hedges} cost ${st.hedge_cost_usd:,.2f}"
            )
        return " | ".join(parts)

    def status(self) -> dict[str, Any]:
        """The control API's status (the trading state is added by the command layer)."""
        unds: dict[str, Any] = {}
        for u, st in self.stats.per_underlying.items():
            g = st.last_greeks
            num = self.config.numeraire
            lo, target, hi = st.last_band
            unds[u] = {
                "delta": _num(st.last_delta_coin),
                "gamma": _num(g.total.gamma_coin_per_usd(num)) if g else None,
                "vega": _num(g.total.vega_usd_per_vol) if g else None,
                "theta": _num(g.total.theta_usd_per_day) if g else None,
                "index_usd": _num(g.index_price_usd) if g else None,
                "band": {"lower": _num(lo), "upper": _num(hi)},
                "target": _num(target),
                "policy": self.policies.policy_for(u)[0],
                "last_decision": st.last_decision,
                "hedges": st.hedges,
                "hedge_cost_usd": st.hedge_cost_usd,
                "time_in_band": st.in_band_samples / st.samples if st.samples else None,
                "band_inputs": band_inputs(st.last_risk),
            }
            if len(self.accounts) > 1:
                unds[u]["delta_by_account"] = {k: _num(v) for k, v in st.delta_by_account.items()}
        open_orders = []
        for r in self.shared.executor.open_records() if self.shared.executor is not None else ():
            venue = self.account_of(r.venue).venue
            inst = venue.instruments().get(r.instrument) if venue is not None else None
            open_orders.append(
                {
                    "label": r.label,
                    "venue": r.venue,
                    "instrument": r.instrument,
                    "underlying": inst.underlying if inst is not None else None,
                    "side": str(r.side),
                    "amount": r.amount,
                    "amount_unit": str(r.amount_unit),
                    "limit_price": r.limit_price,
                    "price_unit": str(inst.price_unit) if inst is not None else None,
                    "status": str(r.status),
                }
            )
        health = self.account.feed.health() if self.account.feed is not None else []
        freshness = [
            {"source": str(h.source), "key": h.key, "age_s": h.age_s, "stale": h.stale}
            for h in health
        ]
        # The list is cut to keep the document small; the summary covers every source.
        summary = summarize_freshness((str(h.source), h.key, h.age_s, h.stale) for h in health)
        return {
            "venue": self.account.name,
            "accounts": {name: self._account(name) for name in self.accounts},
            "mode": self.account.settings.mode,
            "dry_run": self.config.dry_run,
            "speed": self.clocks.speed,
            "numeraire": self.config.numeraire,
            "now_ms": self.clocks.clock_ms(),
            "started_ms": self.stats.started_ms,
            "units": STATUS_UNITS,
            "underlyings": unds,
            "open_orders": open_orders,
            "orders_sent_total": self._orders_sent_total(),
            "executions_in_flight": len(self.hedge_loop.exec_tasks),
            "data_freshness": freshness[:50],
            "data_freshness_summary": [f.to_json() for f in summary],
            "errors": len(self.stats.errors),
        }

    def _account(self, name: str) -> dict[str, Any]:
        """One venue account's rows: state (its own, and the one its orders are judged in),
        reasons, equity and maintenance margin per currency, hedge positions, freshness,
        delta per underlying and why it is out of routing (if it is)."""
        account = self.accounts[name]
        states = self.shared.states
        machine = states.accounts.get(name) if states is not None else None
        hedge_positions: dict[str, float] = {}
        hedge_delta: dict[str, float] = {}
        if account.feed is not None:
            hedge_names = {
                n for u in account.underlyings for n in self.config.hedge_instruments(name, u)
            }
            for inst_name, pos in account.feed.positions.items():
                if inst_name in hedge_names and pos.amount != 0:
                    hedge_positions[inst_name] = pos.amount
                    per = account.market.coin_per_amount(name, inst_name)
                    if per is not None:
                        hedge_delta[inst_name] = pos.amount * per
        health = account.feed.health() if account.feed is not None else []
        summary = summarize_freshness((str(h.source), h.key, h.age_s, h.stale) for h in health)
        return {
            "exchange": account.settings.exchange,
            "mode": account.settings.mode,
            "roles": list(account.settings.roles),
            "state": machine.state.value.upper() if machine is not None else None,
            "effective_state": states.state(name).value.upper() if states is not None else None,
            "reasons": [r.to_json() for r in machine.reasons] if machine is not None else [],
            "out_of_routing": self.hedge_loop.excluded.get(name),
            "margin": {
                ccy: {
                    "equity": _num(eq),
                    "maintenance_margin": _num(mm),
                    "margin_use": _num(mm / eq) if eq > 0 else None,
                }
                for ccy, (eq, mm) in account.checks.margin.items()
            },
            "hedge_positions": hedge_positions,
            "hedge_delta_coin": hedge_delta,
            "delta": {
                u: _num(st.delta_by_account[name])
                for u, st in self.stats.per_underlying.items()
                if name in st.delta_by_account
            },
            "data_freshness_summary": [f.to_json() for f in summary],
        }


def band_inputs(risk: UnderlyingRisk | None) -> dict[str, float | None]:
    """The market inputs of the band the last evaluation priced (`BAND_INPUTS`, units in
    `STATUS_UNITS`): None for each where there was no evaluation yet, or where the figure
    was not computed (no averaged gamma or coherence for the policy) or is not finite."""
    out: dict[str, float | None] = {}
    for name in BAND_INPUTS:
        value = getattr(risk, name) if risk is not None else None
        out[name] = _num(value) if value is not None else None
    return out


def _num(x: float) -> float | None:
    return x if math.isfinite(x) else None
