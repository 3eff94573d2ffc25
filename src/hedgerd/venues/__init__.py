"""hedgerd.venues: everything that talks to exchanges.

- `base`: the `Venue` protocol, capabilities, rate-limit lanes, the classified `VenueError`
  and the events the adapters stream.
- `ccxt_venue`: generic ccxt plumbing (market normalisation, error classification,
  endpoints, per-lane rate limits, supervised streams with backoff).
- `deribit`: the Deribit adapter (private session: `user.changes`, `user.portfolio`,
  heartbeat, cancel-on-disconnect; labels as client ids; testnet/live check).
- `deribit_names`: Deribit instrument names → `Instrument`.
- `units`: venue amounts and prices ↔ coin and USD.
- `book_feed`: keeps a `GreeksBook` equal to the venue's truth (snapshot, streams,
  reconciliation, staleness, Greeks cross-check).
- `positions_command`: `hedgerd positions`.
"""
