"""The scoring service: a FastAPI app around one loaded `Detector`.

`POST /v1/score` takes clips as multipart `files` (repeatable, with form fields `machine` and
`section`) or as one raw WAV/FLAC body (`?machine=&section=`), and returns per clip the anomaly
score, the decision, the threshold and the machine's training-score percentile. Decoding and scoring
run in one worker thread, off the event loop; bounds on the body size, the clip duration and the
number of files answer 413, content that is not audio 415, an unknown machine or unusable audio 422.
"""

from __future__ import annotations

import asyncio
import platform
from concurrent.futures import ThreadPoolExecutor
from contextlib import asynccontextmanager
from dataclasses import asdict, dataclass
from typing import Literal

import numpy as np
import torch
from fastapi import FastAPI, Query, Request
from fastapi.responses import HTMLResponse, JSONResponse, Response
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest
from pydantic import BaseModel, Field
from starlette.datastructures import UploadFile
from starlette.exceptions import HTTPException

from asdlab import __version__
from asdlab.data.audio import decode_audio, probe_audio
from asdlab.detector import ClipScore, Detector
from asdlab.errors import AudioError, DataError
from asdlab.serve.limits import BodySizeLimit, RequestTooLarge, ServeLimits
from asdlab.serve.metrics import MetricsMiddleware, ServiceMetrics
from asdlab.serve.page import PAGE_HTML

__all__ = ["create_app"]

ErrorKind = Literal["too_large", "not_audio", "unusable_audio", "unknown_machine", "bad_request", "internal"]
_STATUS: dict[str, int] = {"too_large": 413, "not_audio": 415, "unusable_audio": 422, "unknown_machine": 422,
                           "bad_request": 400}
_RAW_TYPES = ("audio/wav", "audio/x-wav", "audio/wave", "audio/vnd.wave", "audio/flac", "audio/x-flac",
              "application/octet-stream")
_HISTOGRAM_BINS = 20


class ClipResult(BaseModel):
    """One scored clip."""

    file: str = Field(description="the uploaded file's name")
    machine: str
    section: str
    score: float = Field(description="anomaly score, higher = more anomalous (the scale of `asdlab score`'s files)")
    threshold: float = Field(description="the machine's decision threshold on the same scale")
    decision: int = Field(description="1 = anomalous (score > threshold), 0 = normal")
    percentile: float = Field(description="percent of the machine's normal training clips scoring at or below it")


class SkippedClip(BaseModel):
    """An uploaded file that could not be scored."""

    file: str
    problem: str = Field(description="what is wrong with it")
    kind: ErrorKind


class ScoreResponse(BaseModel):
    """Scores of the clips that could be used; the others in `skipped`, each with its reason."""

    results: list[ClipResult]
    skipped: list[SkippedClip]


class ErrorResponse(BaseModel):
    """A refused request: what is wrong, the kind, and the files at fault (if any)."""

    detail: str
    kind: ErrorKind
    problems: list[SkippedClip] = []


class Histogram(BaseModel):
    edges: list[float] = Field(description=f"{_HISTOGRAM_BINS + 1} bin edges")
    counts: list[int]


class MachineInfo(BaseModel):
    machine: str
    section: str
    threshold: float
    training_clips: int
    training_scores: Histogram = Field(description="histogram of the normal training clips' out-of-fold scores")


class DetectorInfo(BaseModel):
    source: str
    recipe: str
    backbone: str
    backend: str
    sample_rate: int
    machines: list[MachineInfo]
    limits: dict[str, float]
    versions: dict[str, str | None]


class Health(BaseModel):
    status: Literal["ok"]
    machines: int


@dataclass(frozen=True)
class _Problem:
    kind: str
    file: str
    problem: str


def _error(status_kind: str, detail: str, problems: list[_Problem] = ()) -> JSONResponse:
    body = {"detail": detail, "kind": status_kind, "problems": [asdict(p) for p in problems]}
    return JSONResponse(status_code=_STATUS[status_kind], content=body)


def _request_body_schema() -> dict:
    binary = {"schema": {"type": "string", "format": "binary"}}
    multipart = {"schema": {
        "type": "object",
        "required": ["files", "machine"],
        "properties": {
            "files": {"type": "array", "items": {"type": "string", "format": "binary"},
                      "description": "audio files (WAV, FLAC, ...); repeat the field for several"},
            "machine": {"type": "string", "description": "machine type, as the detector names it"},
            "section": {"type": "string", "description": "two-digit section; optional when the machine has one"},
        },
    }}
    return {"requestBody": {"required": True, "content": {
        "multipart/form-data": multipart, **{t: binary for t in ("audio/wav", "audio/flac", "application/octet-stream")},
    }}}


def _check_headers(uploads: list[tuple[str, bytes]], limits: ServeLimits
                   ) -> tuple[list[tuple[str, bytes]], list[_Problem]]:
    """The uploads whose header says audio within the duration bound (a header read: cheap, on the event loop)."""
    usable, problems = [], []
    for name, data in uploads:
        try:
            info = probe_audio(data, name)
        except AudioError as error:
            problems.append(_Problem("not_audio", name, error.problem))
            continue
        if info.duration_s > limits.max_clip_s:
            problems.append(_Problem("too_large", name, f"clip of {info.duration_s:.1f} s is longer than the "
                                                        f"{limits.max_clip_s:g} s limit"))
            continue
        usable.append((name, data))
    return usable, problems


def _score_uploads(detector: Detector, uploads: list[tuple[str, bytes]], machine: str, section: str
                   ) -> tuple[list[ClipScore], list[_Problem]]:
    """Decode and score the uploads (runs in the worker thread)."""
    waves, names, problems = [], [], []
    for name, data in uploads:
        try:
            waves.append(decode_audio(data, name, sample_rate=detector.sample_rate))
            names.append(name)
        except AudioError as error:
            problems.append(_Problem("unusable_audio", name, error.problem))
    scored = []
    for result in detector.score_waveforms(waves, names, machine, section):
        if isinstance(result, AudioError):
            problems.append(_Problem("unusable_audio", str(result.path), result.problem))
        else:
            scored.append(result)
    return scored, problems


def _histogram(scores: np.ndarray) -> Histogram:
    counts, edges = np.histogram(scores, bins=_HISTOGRAM_BINS)
    return Histogram(edges=edges.tolist(), counts=counts.tolist())


def create_app(detector: Detector, *, limits: ServeLimits = ServeLimits(), source: str = "") -> FastAPI:
    """The service's ASGI app for one detector.

    Args:
        detector: the loaded detector (`asdlab.load_detector`); its model and per-machine references are
            built at start-up, before the first request.
        limits: request bounds.
        source: what to call the detector in `GET /v1/detector` (its path).

    Returns:
        a FastAPI app; run it with uvicorn (`asdlab serve`) or test it with `fastapi.testclient.TestClient`.
    """
    metrics = ServiceMetrics()
    # torch.set_num_threads holds for the thread that calls it (OpenMP), so the worker takes the creating
    # thread's count: a clip scores the same here as in `asdlab score` run with the same setting.
    threads = torch.get_num_threads()
    executor = ThreadPoolExecutor(max_workers=1, thread_name_prefix="asdlab-score",
                                  initializer=torch.set_num_threads, initargs=(threads,))

    def warm_up() -> None:
        detector.model()
        for machine, section in detector.machines:
            detector.reference(machine, section)

    @asynccontextmanager
    async def lifespan(_: FastAPI):
        await asyncio.get_running_loop().run_in_executor(executor, warm_up)
        yield
        executor.shutdown(wait=True)

    app = FastAPI(
        title="asdlab scoring service",
        version=__version__,
        description="Anomaly scores of machine-sound clips from a fitted asdlab detector. Higher = more anomalous.",
        lifespan=lifespan,
    )

    @app.exception_handler(RequestTooLarge)
    async def too_large(_: Request, error: RequestTooLarge) -> JSONResponse:
        metrics.errors.labels("too_large").inc()
        return _error("too_large", f"request body exceeds the {error.limit}-byte limit")

    def refuse(kind: str, detail: str, problems: list[_Problem] = ()) -> JSONResponse:
        metrics.errors.labels(kind).inc()
        return _error(kind, detail, problems)

    error_responses = {status: {"model": ErrorResponse, "description": text} for status, text in (
        (400, "malformed request (e.g. a broken multipart body)"),
        (413, "body, clip duration or number of files over the limit"),
        (415, "not audio, or a content type other than multipart/form-data, WAV or FLAC"),
        (422, "unknown machine or section, missing machine, or audio that cannot be scored"),
    )}

    @app.post("/v1/score", response_model=ScoreResponse, responses=error_responses,
              openapi_extra=_request_body_schema(), summary="Score audio clips of one machine")
    async def score(
        request: Request,
        machine: str | None = Query(None, description="machine type (raw body; multipart may use a form field)"),
        section: str | None = Query(None, description="two-digit section; optional when the machine has one"),
        filename: str = Query("upload", description="name of a raw-body clip in the response"),
    ):
        content_type = request.headers.get("content-type", "").split(";")[0].strip().lower()
        if content_type == "multipart/form-data":
            try:
                form = await request.form(max_files=limits.max_files, max_fields=8)
            except HTTPException as error:  # Starlette's multipart limits and parse errors
                kind = "too_large" if "Too many files" in str(error.detail) else "bad_request"
                detail = (f"more than {limits.max_files} files in one request" if kind == "too_large"
                          else f"malformed multipart body: {error.detail}")
                return refuse(kind, detail)
            machine = form.get("machine") or machine
            section = form.get("section") or section
            uploads = []
            for item in form.getlist("files"):
                if not isinstance(item, UploadFile):
                    return refuse("bad_request", "form field 'files' must carry files, not text")
                uploads.append((item.filename or "upload", await item.read()))
            await form.close()
            if not uploads:
                return refuse("bad_request", "no files: send them in the multipart field 'files'")
        elif content_type in _RAW_TYPES:
            uploads = [(filename, await request.body())]
        else:
            return refuse("not_audio", f"content type {content_type or 'none'!r}: send multipart/form-data with "
                                       "'files', or a raw WAV/FLAC body (audio/wav, audio/flac)")
        if not machine:
            return refuse("unknown_machine", "no machine given (form field or query parameter 'machine')")
        try:
            section = detector.resolve_section(str(machine), None if section is None else str(section))
        except DataError as error:
            return refuse("unknown_machine", str(error))
        uploads, problems = _check_headers(uploads, limits)
        scored = []
        if uploads:
            scored, decode_problems = await asyncio.get_running_loop().run_in_executor(
                executor, _score_uploads, detector, uploads, str(machine), section)
            problems += decode_problems
        for clip in scored:
            metrics.clips.labels(clip.machine, str(clip.decision)).inc()
        metrics.skipped.inc(len(problems))
        if not scored:
            kinds = {p.kind for p in problems}
            kind = next(k for k in ("too_large", "not_audio", "unusable_audio") if k in kinds)
            listed = "; ".join(f"{p.file}: {p.problem}" for p in problems)
            return refuse(kind, f"no clip could be scored: {listed}", problems)
        return ScoreResponse(
            results=[ClipResult(file=c.name, machine=c.machine, section=c.section, score=c.score,
                                threshold=c.threshold, decision=c.decision, percentile=c.percentile) for c in scored],
            skipped=[SkippedClip(**asdict(p)) for p in problems],
        )

    @app.get("/v1/detector", response_model=DetectorInfo, summary="What the detector knows and how it scores")
    async def describe() -> DetectorInfo:
        machines = []
        for machine, section in detector.machines:
            reference = detector.reference(machine, section)
            machines.append(MachineInfo(machine=machine, section=section, threshold=reference.threshold,
                                        training_clips=len(reference.train_scores),
                                        training_scores=_histogram(reference.train_scores)))
        versions = {"asdlab": __version__, "python": platform.python_version(), "numpy": np.__version__}
        fitted_with = detector.info.get("versions") or {}
        versions["fitted with asdlab"] = fitted_with.get("asdlab") or detector.info.get("asdlab")
        return DetectorInfo(
            source=source or str(detector.directory), recipe=detector.recipe, backbone=detector.backbone.preset,
            backend=detector.scoring.backend, sample_rate=detector.sample_rate, machines=machines,
            limits={"max_request_bytes": limits.max_request_bytes, "max_clip_s": limits.max_clip_s,
                    "max_files": limits.max_files},
            versions=versions,
        )

    @app.get("/health", response_model=Health, summary="Liveness")
    async def health() -> Health:
        return Health(status="ok", machines=len(detector.machines))

    @app.get("/metrics", summary="Prometheus metrics", response_class=Response,
             responses={200: {"content": {CONTENT_TYPE_LATEST: {}}, "description": "Prometheus text format"}})
    async def prometheus_metrics() -> Response:
        return Response(generate_latest(metrics.registry), media_type=CONTENT_TYPE_LATEST)

    @app.get("/", response_class=HTMLResponse, include_in_schema=False)
    async def page() -> HTMLResponse:
        return HTMLResponse(PAGE_HTML)

    app.add_middleware(BodySizeLimit, max_bytes=limits.max_request_bytes,
                       on_refused=lambda: metrics.errors.labels("too_large").inc())
    app.add_middleware(MetricsMiddleware, metrics=metrics,
                       endpoints=frozenset({"/v1/score", "/v1/detector", "/health", "/metrics", "/"}))
    app.state.metrics = metrics
    return app
