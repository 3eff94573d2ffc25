"""Independent references for the pricing tests (not used by the library).

- ``exact_black76``: Black-76 price and Greeks of the exact float64 inputs in 50-digit
  ``decimal`` arithmetic (own erfc: power series near 0, continued fraction in the tails), so
  it is the truth to far beyond double precision, whatever the wing or expiry.
- ``bs_reference``: textbook scalar Black-Scholes-Merton in spot/rate/dividend form with
  ``scipy.stats.norm`` (a different parametrisation and code path from the library).
"""

from __future__ import annotations

import math
from decimal import Decimal, localcontext

from scipy.stats import norm

_PREC = 60
_PI = Decimal(
    "3.14159265358979323846264338327950288419716939937510582097494459230781640628620899863"
)


def _erfc_pos(z: Decimal) -> Decimal:
    """erfc(z) for z >= 0 in the current context."""
    if z < 3:
        # erf series: 2/sqrt(pi) * sum (-1)^n z^(2n+1) / (n! (2n+1)); z < 3 keeps terms small.
        term = z
        total = z
        z2 = z * z
        n = 0
        eps = Decimal(10) ** (-(_PREC + 5))
        while True:
            n += 1
            term = -term * z2 / n
            add = term / (2 * n + 1)
            total += add
            if abs(add) < eps:
                break
        return 1 - 2 / _PI.sqrt() * total
    # Continued fraction: erfc(z) = exp(-z^2)/sqrt(pi) * 1/(z + (1/2)/(z + 1/(z + (3/2)/(z + ...
    frac = Decimal(0)
    for k in range(400, 0, -1):
        frac = (Decimal(k) / 2) / (z + frac)
    return (-(z * z)).exp() / _PI.sqrt() / (z + frac)


def _ncdf(x: Decimal) -> Decimal:
    z = -x / Decimal(2).sqrt()
    if z >= 0:
        return _erfc_pos(z) / 2
    return 1 - _erfc_pos(-z) / 2


def _npdf(x: Decimal) -> Decimal:
    return (-(x * x) / 2).exp() / (2 * _PI).sqrt()


def exact_black76(
    is_call: bool, F: float, K: float, tau: float, vol: float, D: float
) -> dict[str, float]:
    """Price and Greeks (definitions as in hedgerd.pricing.black) in high precision."""
    with localcontext() as ctx:
        ctx.prec = _PREC
        f, k, t, s, d = (Decimal(v) for v in (F, K, tau, vol, D))
        th = 1 if is_call else -1
        sq = t.sqrt()
        v = s * sq
        d1 = (f / k).ln() / v + v / 2
        d2 = d1 - v
        n1 = _npdf(d1)
        price = d * th * (f * _ncdf(th * d1) - k * _ncdf(th * d2))
        r = -d.ln() / t
        out = {
            "price": price,
            "delta": d * th * _ncdf(th * d1),
            "gamma": d * n1 / (f * v),
            "vega": d * f * n1 * sq,
            "theta": -d * f * n1 * s / (2 * sq) + r * price,
            "vanna": -d * n1 * d2 / s,
            "volga": d * f * n1 * sq * d1 * d2 / s,
        }
        return {key: float(val) for key, val in out.items()}


def bs_reference(
    is_call: bool, S: float, K: float, tau: float, vol: float, r: float, q: float
) -> dict[str, float]:
    """Textbook Black-Scholes-Merton Greeks w.r.t. spot (theta at fixed spot, per year)."""
    sq = math.sqrt(tau)
    d1 = (math.log(S / K) + (r - q + 0.5 * vol * vol) * tau) / (vol * sq)
    d2 = d1 - vol * sq
    eq, er = math.exp(-q * tau), math.exp(-r * tau)
    pdf = norm.pdf(d1)
    if is_call:
        price = S * eq * norm.cdf(d1) - K * er * norm.cdf(d2)
        delta = eq * norm.cdf(d1)
        theta = (
            -S * eq * pdf * vol / (2 * sq) - r * K * er * norm.cdf(d2) + q * S * eq * norm.cdf(d1)
        )
    else:
        price = K * er * norm.cdf(-d2) - S * eq * norm.cdf(-d1)
        delta = -eq * norm.cdf(-d1)
        theta = (
            -S * eq * pdf * vol / (2 * sq) + r * K * er * norm.cdf(-d2) - q * S * eq * norm.cdf(-d1)
        )
    vega = S * eq * pdf * sq
    return {
        "price": price,
        "delta": delta,
        "gamma": eq * pdf / (S * vol * sq),
        "vega": vega,
        "theta": theta,
        "vanna": -eq * pdf * d2 / vol,
        "volga": vega * d1 * d2 / vol,
    }
