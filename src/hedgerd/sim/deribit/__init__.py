"""The simulator's Deribit v2 dialect: Deribit's instruments and listing rules, accounts and
portfolio margin, JSON-RPC methods and their parameters, market-data and account views,
authentication, credit-based rate limits and WebSocket channels. The venue itself
(`sim/exchange.py`, `SimExchange`) still steps the shared market for every venue; the OKX
dialect is `sim/okx/`."""
