"""FastAPI: REST, the live WebSocket fan-out, auth and region scoping (CONTRACT sections 2, 5)."""
