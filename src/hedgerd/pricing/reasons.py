"""Reason codes: why a pricing or implied-volatility output is NaN (or special).

One enum serves both `black76`/`black_scholes` (input validation) and `implied_vol` (price
information), so a caller can store a single int8 array per quote. Codes are stable: they
may be persisted and exported as metric labels.
"""

from __future__ import annotations

from enum import IntEnum

import numpy as np


class Reason(IntEnum):
    """Why an output is what it is. Stored as ``numpy.int8``.

    - ``OK`` (0): finite, meaningful result.
    - ``BAD_INPUT`` (1): an input is NaN or infinite, or the forward, strike, tau, vol or
      discount is zero or negative (tau < 0, vol <= 0), or a price is negative. Output is NaN.
    - ``BELOW_INTRINSIC`` (2): implied vol only: the price is below the discounted intrinsic
      value (no-arbitrage lower bound) by more than float rounding. Output is NaN.
    - ``ABOVE_UPPER_BOUND`` (3): implied vol only: the price is at or above the no-arbitrage
      upper bound (discounted forward for a call, discounted strike for a put). Output is NaN.
    - ``NO_TIME_VALUE_INFO`` (4): implied vol only: the time value is so small relative to the
      price (or so close to zero) that it is indistinguishable from rounding, so any vol in a
      wide range reproduces the price. Output is NaN.
    - ``EXPIRED`` (5): tau == 0 exactly. Pricing returns the discounted intrinsic value, a
      step delta (0.5 exactly at the money) and zero for every other Greek; implied vol is
      NaN (an expired option carries no vol information).
    """

    OK = 0
    BAD_INPUT = 1
    BELOW_INTRINSIC = 2
    ABOVE_UPPER_BOUND = 3
    NO_TIME_VALUE_INFO = 4
    EXPIRED = 5


REASON_DTYPE = np.int8
