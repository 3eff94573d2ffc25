"""Immutable data that crosses component boundaries. Units live in field names or unit fields."""

from hedgerd.model.decisions import HedgeDecision, HedgeLeg, HedgeStyle, HedgeTrigger
from hedgerd.model.instruments import (
    AmountUnit,
    Instrument,
    InstrumentKind,
    OptionType,
    PriceUnit,
    UnknownInstrumentError,
)
from hedgerd.model.market import BookLevel, IndexPrice, OrderBookSnapshot, Quote, Ticker
from hedgerd.model.orders import (
    Fill,
    OptionTrade,
    OrderSide,
    OrderStatus,
    OrderType,
    OrderUpdate,
    TimeInForce,
)
from hedgerd.model.positions import Balance, Position

__all__ = [
    "AmountUnit",
    "Balance",
    "BookLevel",
    "Fill",
    "HedgeDecision",
    "HedgeLeg",
    "HedgeStyle",
    "HedgeTrigger",
    "IndexPrice",
    "Instrument",
    "InstrumentKind",
    "OptionTrade",
    "OptionType",
    "OrderBookSnapshot",
    "OrderSide",
    "OrderStatus",
    "OrderType",
    "OrderUpdate",
    "Position",
    "PriceUnit",
    "Quote",
    "Ticker",
    "TimeInForce",
    "UnknownInstrumentError",
]
