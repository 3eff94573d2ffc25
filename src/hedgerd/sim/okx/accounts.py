"""The OKX venue's account records: credentials (with the passphrase), orders in OKX's terms
on the shared `Order`, fills, and the unified account (cash per currency, net positions by
instId, open orders, the dead-man deadline). Amounts are contracts (spot: coin); money in the
settlement currency unless named."""

from __future__ import annotations

from dataclasses import dataclass, field

from hedgerd.sim.deribit.accounts import Order, Position
from hedgerd.sim.okx.instruments import OkxInstrument


@dataclass(frozen=True, slots=True)
class OkxCredentials:
    account_id: str
    api_key: str
    api_secret: str
    passphrase: str
    uid: str


@dataclass(slots=True, eq=False)
class OkxOrder(Order):
    """An order in OKX's terms on top of the shared `Order` (amount in contracts)."""

    okx: OkxInstrument | None = None
    ord_id: str = ""
    cl_ord_id: str = ""
    tag: str = ""
    ord_type: str = "limit"
    td_mode: str = "cross"
    fee_total: float = 0.0  # OKX sign: negative = paid, settlement currency
    fee_ccy: str = ""
    pnl: float = 0.0
    cancel_source: str = ""
    last_fill: OkxFill | None = None
    fills: list[OkxFill] = field(default_factory=list)


@dataclass(slots=True)
class OkxFill:
    """One fill of one account's order (`fills-history`, the `orders` push's fill fields)."""

    trade_id: str
    bill_id: str
    order: OkxOrder
    side: str
    px: float
    sz: float  # contracts (spot: coin)
    fee: float  # OKX sign: negative = paid
    fee_ccy: str
    exec_type: str  # "T" taker | "M" maker
    ts: int
    fill_pnl: float
    mark_px: float
    index_px: float
    #: Options: the mark's vol (a fraction) and the forward (USD) at the fill, as OKX's
    #: `fillMarkVol` and `fillFwdPx` (None: not an option, the fields are empty).
    mark_vol: float | None = None
    fwd_px: float | None = None


@dataclass(slots=True)
class OkxAccount:
    """One unified account: cash per currency, net positions by instId, orders, fills."""

    creds: OkxCredentials
    cash: dict[str, float] = field(default_factory=dict)
    positions: dict[str, Position] = field(default_factory=dict)
    open_orders: dict[str, OkxOrder] = field(default_factory=dict)
    fills: list[OkxFill] = field(default_factory=list)
    funding_paid: dict[str, float] = field(default_factory=dict)  # settle ccy, paid > 0
    position_ctime: dict[str, int] = field(default_factory=dict)
    position_utime: dict[str, int] = field(default_factory=dict)
    cancel_all_at_ms: int | None = None  # the dead-man deadline, sim ms
    #: OKX `posMode`, set on the web: `net_mode`, or `long_short_mode` (a long and a short
    #: of one instrument side by side). The simulated engine trades net only; a test sets
    #: long/short to see a client refuse such an account.
    pos_mode: str = "net_mode"
    #: OKX `acctLv`: 2 Futures mode (margin per currency: `details[].imr/mmr`), 3
    #: Multi-currency margin or 4 Portfolio margin (margin for the account, in USD: the
    #: top-level `imr/mmr/mgnRatio`; the per-currency fields are empty), as OKX documents.
    acct_lv: str = "3"
    #: Initial margin OKX requires on top of the positions' and orders', per currency (admin
    #: `accounts/margin`: a raised requirement, as a higher position tier brings): it is in
    #: `imr` and `frozenBal` and lowers `availEq`; the maintenance margin `mmr` stays.
    imr_add: dict[str, float] = field(default_factory=dict)

    @property
    def account_id(self) -> str:
        return self.creds.account_id

    def position(self, inst: OkxInstrument) -> Position:
        p = self.positions.get(inst.inst_id)
        if p is None:
            p = self.positions[inst.inst_id] = Position(inst.sim)
        return p
