"""`asdlab serve DETECTOR [--host 127.0.0.1] [--port 8000]`: the HTTP scoring service (asdlab.serve)."""

from __future__ import annotations

import argparse
from pathlib import Path

__all__ = ["register", "run"]


def register(subparsers: argparse._SubParsersAction) -> None:
    """Add the `serve` subcommand."""
    parser = subparsers.add_parser(
        "serve",
        help="serve a detector over HTTP: POST /v1/score, GET /v1/detector, /health, /metrics, a page at /",
        description=(
            "Load a detector (folder or .asdlab file) once and serve it with uvicorn. POST /v1/score takes "
            "multipart 'files' (repeatable) with form fields 'machine' and 'section', or one raw WAV/FLAC body "
            "with ?machine=&section=; it returns per clip the score, decision, threshold and training-score "
            "percentile. The OpenAPI schema is at /docs and /openapi.json. Needs the serve extra: "
            "pip install 'asdlab[serve]'."
        ),
    )
    parser.add_argument("detector", type=Path, metavar="DETECTOR", help="detector folder or .asdlab file")
    parser.add_argument("--host", default="127.0.0.1", help="address to listen on (default 127.0.0.1)")
    parser.add_argument("--port", type=int, default=8000, help="port (default 8000)")
    parser.add_argument("--max-request-mb", type=float, default=64.0,
                        help="largest request body, all files together (default 64 MB)")
    parser.add_argument("--max-clip-s", type=float, default=120.0, help="longest clip scored (default 120 s)")
    parser.add_argument("--max-files", type=int, default=16, help="most clips per request (default 16)")
    parser.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from asdlab.errors import ConfigError

    try:  # the optional extra; imported here so argument parsing never pays for it
        import uvicorn

        from asdlab.serve import ServeLimits, create_app
    except ImportError as error:
        raise ConfigError(f"asdlab serve needs the serve extra ({error}): pip install 'asdlab[serve]'") from None
    from asdlab.detector import load_detector

    if args.max_files < 1 or args.max_clip_s <= 0 or args.max_request_mb <= 0:
        raise ConfigError("--max-files, --max-clip-s and --max-request-mb must be positive")
    detector = load_detector(args.detector)
    limits = ServeLimits(max_request_bytes=int(args.max_request_mb * 1e6), max_clip_s=args.max_clip_s,
                         max_files=args.max_files)
    app = create_app(detector, limits=limits, source=str(args.detector))
    machines = ", ".join(f"{m}/{s}" for m, s in detector.machines)
    print(f"serving {args.detector} ({detector.recipe}; {machines}) on http://{args.host}:{args.port}/", flush=True)
    uvicorn.run(app, host=args.host, port=args.port, workers=1, log_level="warning")
    return 0
