"""The query service (FastAPI, optionally on Ray Serve)."""
