"""HTTP scoring service for a fitted detector (FastAPI; the optional `serve` extra).

`create_app(detector)` returns the ASGI app that `asdlab serve` runs with uvicorn: `POST /v1/score`,
`GET /v1/detector`, `GET /health`, `GET /metrics` (Prometheus) and a page at `/`.
"""

from asdlab.serve.app import create_app
from asdlab.serve.limits import ServeLimits

__all__ = ["create_app", "ServeLimits"]
