"""hedgerd.risk: the trading state (ACTIVE, REDUCE_ONLY, HALTED) and what moves it.

- `trading_state`: the state machine, its reasons and the pure order gate `allows`.
- `limits`: the kill-switch and alert settings (`[risk]` in the config) and
  `render_switch_table()`, the README's table of switches (`python -m hedgerd.risk.limits`).
- `trips`: `Trip` (what a switch reports), `OrderCheck`, `SlidingWindow`, shared comparisons.
- `monitors`, `sanity` (prices), `pnl` (daily hedge loss): the switches, pure, time injected.
- `kill_switches`: `KillSwitchBoard`, which holds one of each, trips the state machine, logs,
  exports metrics, alerts, and runs the executor's pre-trade `check_order`; it re-exports the
  switches' public names.
- `alerts`: alert hooks (command, loopback webhook, Unix socket), rate-limited and redacted;
  `alert_webhook`: the HTTPS webhook for people (Slack or JSON), queued, retried, redacted.

Nothing is re-exported here: `hedgerd.ops.metrics` imports `trading_state`, and importing the
board from this package's `__init__` would make that a cycle.
"""
