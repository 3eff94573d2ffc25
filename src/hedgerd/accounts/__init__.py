"""Per-account services of the daemon: one venue account (a `[venues.NAME]` section) as it
runs, under the portfolio services.

- `parts`: the account's venue session, reconciler, book and feed (`AccountParts`).
- `runtime`: `AccountRuntime`, which builds and starts them, routes the account's stream
  events, supervises its feed and answers for the account (orders blocked, instruments).
- `market`: `MarketCache`, the account's quotes, marks and positions as the executor and the
  hedge loop read them.
- `integrity`: `BookIntegrity`, what reconciliations and delta cross-checks mean for the kill
  switches, and the book's refresh.
- `checks`: `AccountChecks`, clock skew and margin.
"""
