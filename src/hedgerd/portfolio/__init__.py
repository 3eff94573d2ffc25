"""Portfolio-wide services of the daemon, over every venue account it runs (one today).

- `parts`: the clocks and the parts every service shares (journal, trading state,
  kill-switch board, metrics, alerts, executor).
- `scope`: `PortfolioScope` (config, clocks, parts, stats, the account) and the services'
  base, `PortfolioService`.
- `hedge_loop`: `HedgeLoop`, the controller pass and the executions it starts.
- `fills`: `FillLedger`, the hedger's fills counted once, with their cost.
- `policies`: `PolicyBook`, the policies in force and the operator's tunables.
- `flatten`: `Flattener`, the operator's flatten.
- `daily_loss`: `DailyLossCheck`, the day's hedge P&L for its kill switch.
- `status`: `StatusReport`, the status document and line; `stats`: what they report.
"""
