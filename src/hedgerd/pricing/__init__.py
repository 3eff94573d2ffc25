"""hedgerd.pricing: vectorised Black-76 / Black-Scholes prices and Greeks, implied volatility,
numeraire conversions.

Pure numerics: no I/O, no clock. See ``hedgerd.pricing.black`` for conventions (units, theta
and discounting, expiry, bad input policy) and ``hedgerd.pricing.reasons`` for reason codes.
"""

from hedgerd.pricing.black import (
    Greeks,
    black76,
    black76_into,
    black_scholes,
    pricing_reason,
    set_threads,
)
from hedgerd.pricing.implied import implied_vol, implied_vol_with_reason
from hedgerd.pricing.numeraire import (
    coin_numeraire_delta,
    coin_to_usd,
    usd_numeraire_delta,
    usd_to_coin,
)
from hedgerd.pricing.reasons import Reason

__all__ = [
    "Greeks",
    "Reason",
    "black76",
    "black76_into",
    "black_scholes",
    "coin_numeraire_delta",
    "coin_to_usd",
    "implied_vol",
    "implied_vol_with_reason",
    "pricing_reason",
    "set_threads",
    "usd_numeraire_delta",
    "usd_to_coin",
]
