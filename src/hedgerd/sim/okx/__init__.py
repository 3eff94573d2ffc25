"""The OKX API v5 dialect of the simulator: REST under `/api/v5`, WebSocket under
`/ws/v5/{public,private,business}`, over an `OkxVenue` that shares the world's index and vol
surface with the Deribit venue (see docs/simulator.md, "OKX dialect")."""
