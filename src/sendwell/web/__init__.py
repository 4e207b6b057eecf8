"""The web adapter (FastAPI): recipient pages, admin UI, REST API under /api/v1, health checks and /metrics."""
