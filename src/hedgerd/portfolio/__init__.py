"""Portfolio-wide services of the daemon, over every venue account it runs (one today).

- `parts`: the portfolio-wide parts (journal, trading state, kill-switch board, metrics,
  alerts, executor) and the clocks, shared by the services.
- `stats`: what the hedge loop saw per underlying (`DaemonStats`, `HedgeObserver`).
"""
