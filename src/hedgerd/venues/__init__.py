"""hedgerd.venues: everything that talks to exchanges.

- `base`: the `Venue` protocol (with the neutral seam: server time, margin summaries,
  order-path readiness, instrument resolution), capabilities, rate-limit lanes, the
  classified `VenueError` with neutral `RejectReason`s, and the events the adapters stream.
- `registry`: exchange name → adapter factory and instrument-name parser.
- `ccxt_venue`: generic ccxt plumbing (market normalisation, error classification,
  endpoints, per-lane rate limits, supervised streams with backoff).
- `deribit/`: the Deribit adapter (private session: `user.changes`, `user.portfolio`,
  heartbeat, cancel-on-disconnect; labels as client ids; testnet/live check), its payloads,
  instrument names, error codes and rate limits.
- `units`: venue amounts and prices ↔ coin and USD.
- `book_feed`: keeps a `GreeksBook` equal to the venue's truth (snapshot, streams,
  reconciliation, staleness, Greeks cross-check).
- `positions_command`: `hedgerd positions`.
"""
