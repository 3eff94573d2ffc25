"""Option positions an OKX account starts a paper run with, so the two-venue paper portfolio
holds options on both venues (the Deribit market maker's come from the scenario's
`accounts`; an OKX account of the scenario has balances only).

Each position is booked as a client trade at the mark (`OkxVenue.book_trade_at`, the admin
path), before the daemon starts: the account's first snapshot already holds them. The
trades are stamped `STARTING_BOOK_AGE_MS` before the venue's clock: a desk's book was built
before the run, so its trades lie outside the option-flow estimator's window and the daemon's
seed from the fills history (`portfolio.flow_seed`) does not read the book as flow.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Literal

from hedgerd.sim.okx.instruments import OkxInstrument
from hedgerd.sim.okx.venue import OkxVenue

#: How long before the run the starting book's trades are stamped (ms): 7 days, beyond the
#: option-flow estimator's 3-day window (`hedging.flow.FLOW_WINDOW_MS`).
STARTING_BOOK_AGE_MS = 7 * 86_400_000


@dataclass(frozen=True, slots=True)
class StartingOption:
    """An option by its place in the listing, not its name (names depend on the start date):
    `expiry_rank` 0 = nearest listed expiry (clamped to the last), strike nearest to the
    index times `moneyness`; `size_coin` coin of the underlying, negative for short."""

    currency: Literal["BTC", "ETH"]
    option_type: Literal["C", "P"]
    expiry_rank: int
    moneyness: float
    size_coin: float


#: A smaller short-gamma book than the Deribit market maker's, on other expiries: short
#: at-the-money straddles, about delta-neutral at the start (the paper run's first
#: evaluations find the portfolio in its band, as with the Deribit book alone).
PAPER_OKX_OPTIONS: tuple[StartingOption, ...] = (
    StartingOption("BTC", "C", 3, 1.0, -4.0),
    StartingOption("BTC", "P", 3, 1.0, -4.0),
    StartingOption("ETH", "C", 4, 1.0, -40.0),
    StartingOption("ETH", "P", 4, 1.0, -40.0),
)


def pick_option(venue: OkxVenue, spec: StartingOption) -> OkxInstrument | None:
    """The listed option `spec` names (None when the currency lists none of that type)."""
    live = [
        i
        for i in venue.live()
        if i.is_option and i.base == spec.currency and i.opt_type == spec.option_type
        and i.expiry_ms is not None and i.expiry_ms > venue.market_ms + 86_400_000
    ]  # fmt: skip
    expiries = sorted({i.expiry_ms for i in live if i.expiry_ms is not None})
    if not expiries:
        return None
    expiry = expiries[min(spec.expiry_rank, len(expiries) - 1)]
    target_usd = venue.index_price(spec.currency) * spec.moneyness
    same = [i for i in live if i.expiry_ms == expiry and i.strike is not None]
    return min(same, key=lambda i: abs((i.strike or 0.0) - target_usd))


def book_starting_options(
    venue: OkxVenue, account_id: str, specs: Sequence[StartingOption] = PAPER_OKX_OPTIONS
) -> list[tuple[str, float]]:
    """Book `specs` on the account at the mark; returns (instId, signed contracts) booked.
    Raises ValueError for an unknown account (`book_trade`)."""
    booked: list[tuple[str, float]] = []
    venue.sync()
    at_ms = venue.now_ms() - STARTING_BOOK_AGE_MS
    for spec in specs:
        inst = pick_option(venue, spec)
        if inst is None:
            continue
        contracts = round(abs(spec.size_coin) / inst.ct_mult / inst.lot_sz) * inst.lot_sz
        if contracts <= 0:
            continue
        side = "buy" if spec.size_coin > 0 else "sell"
        venue.book_trade_at(account_id, inst.inst_id, side, contracts, None, at_ms)
        booked.append((inst.inst_id, contracts if side == "buy" else -contracts))
    return booked


def twin_balances(deribit: Mapping[str, float]) -> dict[str, float]:
    """An OKX account's cash for a Deribit account's `deribit` balances: the same coins, its
    USDC held as USDT (the simulated OKX's stablecoin, as in a new account's funds)."""
    out: dict[str, float] = {}
    for ccy, amount in deribit.items():
        key = "USDT" if ccy == "USDC" else ccy
        out[key] = out.get(key, 0.0) + float(amount)
    return out


def open_paper_twin(
    venue: OkxVenue, account_id: str, deribit_balances: Mapping[str, float] | None
) -> list[tuple[str, float]]:
    """Make the account the paper run's OKX twin of the Deribit market maker, before the
    daemon starts: funded like it (`deribit_balances`; None keeps a new account's 10 BTC,
    100 ETH, 100,000 USDT), its starting book (`PAPER_OKX_OPTIONS`) booked, and the client
    option flow trading against it. Returns the book booked.

    The funds matter: the flow books as many options here as on Deribit, and the simulated
    OKX margins each short option on its own (unified account, no offset by the longs), so
    the maintenance margin grows with the flow. On a new account's funds it passed the margin
    switch's 50% of equity after about an hour (52 simulated minutes in a paper run) and the
    account went REDUCE_ONLY (README, the tour); on the market maker's it is under 20% after
    two hours."""
    if deribit_balances is not None:
        venue.accounts[account_id].cash = twin_balances(deribit_balances)
    booked = book_starting_options(venue, account_id)
    venue.flow.account_id = account_id
    return booked


__all__ = [
    "PAPER_OKX_OPTIONS",
    "STARTING_BOOK_AGE_MS",
    "StartingOption",
    "book_starting_options",
    "open_paper_twin",
    "pick_option",
    "twin_balances",
]
