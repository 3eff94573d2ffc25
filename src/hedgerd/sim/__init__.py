"""Exchange simulator speaking Deribit's API v2 over HTTP and WebSocket."""
