"""The scoring service under load, on loopback only: latency, throughput, errors and server memory.

Starts `asdlab serve` as a real process on 127.0.0.1, then for each concurrency level (16 and 64
clients) sends a fixed number of requests, bounded in time: mostly good 10-s clips (multipart or raw
WAV), and a share of bad uploads (not audio, an unknown machine, a silent clip, a body over the size
limit). Good answers must carry exactly the score the clip got before the load; bad ones their 4xx.
The server's RSS is sampled throughout.

    OMP_NUM_THREADS=1 nice -n 10 .venv/bin/python benchmarks/service_load.py --requests 2000 \
        --out benchmarks/results/service_load.json
"""

from __future__ import annotations

import argparse
import asyncio
import io
import json
import os
import random
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

import httpx
import numpy as np
import psutil
import soundfile as sf

ASDLAB = [sys.executable, "-m", "asdlab.cli.main"]


def build_detector(work: Path, duration_s: float, kind: str = "default") -> tuple[Path, list[Path]]:
    """The detector under load, on one synthetic machine: "default" = `asdlab fit` with its default recipe;
    "cnn-small" = a two-branch-cnn-small with random weights (the cost of a trained one, no training)."""
    from asdlab.data.index import index_dataset
    from asdlab.data.synth import generate_dataset
    from asdlab.detector import save_detector
    from asdlab.embeddings.extract import extract_embeddings
    from asdlab.encoders.backbone import build_backbone
    from asdlab.encoders.checkpoints import save_encoder
    from asdlab.pipeline.backbones import BackboneSpec, load_backbone
    from asdlab.pipeline.scoring import ScoreSettings

    root = work / "data"
    generate_dataset(root, machines=1, train_source=30, train_target=4, test_per_group=4, duration_s=duration_s, seed=1)
    if kind == "default":
        from asdlab.pipeline.fit import fit_detector

        fit_detector(root, work / "detector", log=lambda line: None)
        return work / "detector", sorted(root.rglob("test/*.wav"))
    weights = work / "encoder.safetensors"
    save_encoder(build_backbone("two-branch-cnn-small", seed=0).encoder, weights, preset="two-branch-cnn-small")
    spec = BackboneSpec(preset="two-branch-cnn-small", weights=str(weights), level="rms")
    train = extract_embeddings(index_dataset(root, splits=("train",)), load_backbone(spec)).table
    save_detector(work / "detector", backbone=spec, train=train, scoring=ScoreSettings(), recipe="load-test")
    return work / "detector", sorted(root.rglob("test/*.wav"))


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def silent_wav(seconds: float) -> bytes:
    buffer = io.BytesIO()
    sf.write(buffer, np.zeros(int(16000 * seconds), np.float32), 16000, format="WAV")
    return buffer.getvalue()


class Load:
    """One concurrency level: `clients` workers share `total` requests; results are gathered here."""

    def __init__(self, url: str, clips: list[tuple[str, bytes]], expected: dict[str, float], bad_share: float,
                 max_body: int, seed: int) -> None:
        self.url, self.clips, self.expected, self.bad_share = url, clips, expected, bad_share
        self.oversize = b"\0" * (max_body + 1)
        self.silent = silent_wav(2.0)
        self.rng = random.Random(seed)
        self.latencies: list[float] = []
        self.bad_latencies: list[float] = []
        self.statuses: dict[str, int] = {}
        self.failures: list[str] = []

    def _next(self) -> tuple[str, dict, int | None, str | None]:
        """(kind, request keyword arguments, expected status, clip name) of the next request."""
        if self.rng.random() < self.bad_share:
            kind = self.rng.choice(["not_audio", "unknown_machine", "silent", "too_large"])
            raw = {"headers": {"content-type": "audio/wav"}}
            if kind == "not_audio":
                return kind, {**raw, "content": b"this is not audio" * 100, "params": {"machine": "SynFan"}}, 415, None
            if kind == "unknown_machine":
                return kind, {**raw, "content": self.clips[0][1], "params": {"machine": "NoSuchMachine"}}, 422, None
            if kind == "silent":
                return kind, {**raw, "content": self.silent, "params": {"machine": "SynFan"}}, 422, None
            return kind, {**raw, "content": self.oversize, "params": {"machine": "SynFan"}}, 413, None
        name, data = self.rng.choice(self.clips)
        if self.rng.random() < 0.5:
            return "good", {"files": [("files", (name, data, "audio/wav"))], "data": {"machine": "SynFan"}}, 200, name
        return "good", {"content": data, "headers": {"content-type": "audio/wav"},
                        "params": {"machine": "SynFan", "filename": name}}, 200, name

    async def worker(self, client: httpx.AsyncClient, budget: list[int], deadline: float) -> None:
        while budget[0] > 0 and time.monotonic() < deadline:
            budget[0] -= 1
            kind, request, status, name = self._next()
            start = time.perf_counter()
            try:
                answer = await client.post(self.url + "/v1/score", **request)
            except httpx.HTTPError as error:
                self.failures.append(f"{kind}: {type(error).__name__} {error}")
                continue
            elapsed = time.perf_counter() - start
            self.statuses[f"{kind} {answer.status_code}"] = self.statuses.get(f"{kind} {answer.status_code}", 0) + 1
            if answer.status_code != status:
                self.failures.append(f"{kind}: status {answer.status_code}, expected {status}: {answer.text[:200]}")
            elif kind == "good":
                score = answer.json()["results"][0]["score"]
                if score != self.expected[name]:
                    self.failures.append(f"{name}: score {score!r} under load, {self.expected[name]!r} before")
                self.latencies.append(elapsed)
            else:
                self.bad_latencies.append(elapsed)


async def run_level(load: Load, clients: int, total: int, max_seconds: float) -> float:
    budget = [total]
    limits = httpx.Limits(max_connections=clients, max_keepalive_connections=clients)
    async with httpx.AsyncClient(timeout=120, limits=limits) as client:
        start = time.perf_counter()
        await asyncio.gather(*(load.worker(client, budget, time.monotonic() + max_seconds) for _ in range(clients)))
        return time.perf_counter() - start


def sample_rss(process: psutil.Process, samples: list[tuple[float, float]], stop: list[bool]) -> None:
    while not stop[0]:
        try:
            samples.append((time.monotonic(), process.memory_info().rss / 2**20))
        except psutil.Error:
            return
        time.sleep(0.25)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--clients", type=int, nargs="+", default=[16, 64])
    parser.add_argument("--requests", type=int, default=2000, help="requests per concurrency level")
    parser.add_argument("--max-seconds", type=float, default=600, help="stop a level after this long")
    parser.add_argument("--bad-share", type=float, default=0.05, help="share of bad uploads")
    parser.add_argument("--duration-s", type=float, default=10.0, help="length of the good clips (DCASE: 10 s)")
    parser.add_argument("--max-request-mb", type=float, default=1.0, help="the server's body limit")
    parser.add_argument("--detector", choices=("default", "cnn-small"), default="default",
                        help="what is served: `asdlab fit`'s default recipe, fitted here, or a random-weight "
                             "two-branch-cnn-small (the figures before the default changed)")
    parser.add_argument("--work", type=Path, default=None)
    parser.add_argument("--out", type=Path, default=None, help="write the figures as JSON here")
    args = parser.parse_args()
    work = args.work or Path(tempfile.mkdtemp(prefix="service_load_"))
    detector, clip_paths = build_detector(work, args.duration_s, args.detector)
    clips = [(p.name, p.read_bytes()) for p in clip_paths]
    port = free_port()
    url = f"http://127.0.0.1:{port}"
    log = open(work / "server.log", "w")
    server = subprocess.Popen(ASDLAB + ["serve", str(detector), "--host", "127.0.0.1", "--port", str(port),
                                        "--max-request-mb", str(args.max_request_mb)],
                              stdout=log, stderr=subprocess.STDOUT, start_new_session=True)
    try:
        deadline = time.monotonic() + 120
        while True:
            try:
                if httpx.get(url + "/health", timeout=2).status_code == 200:
                    break
            except httpx.HTTPError:
                pass
            if time.monotonic() > deadline or server.poll() is not None:
                raise SystemExit(f"the server did not start:\n{(work / 'server.log').read_text()[-2000:]}")
            time.sleep(0.2)
        expected = {}  # each clip's score before any load, one request at a time
        for name, data in clips:
            answer = httpx.post(url + "/v1/score", content=data, headers={"content-type": "audio/wav"},
                                params={"machine": "SynFan", "filename": name}, timeout=60)
            expected[name] = answer.json()["results"][0]["score"]
        process = psutil.Process(server.pid)
        report = {"detector": args.detector, "clip_s": args.duration_s, "clip_bytes": len(clips[0][1]), "bad_share": args.bad_share,
                  "cpu_count": os.cpu_count(), "levels": []}
        for clients in args.clients:
            load = Load(url, clips, expected, args.bad_share, int(args.max_request_mb * 1e6), seed=clients)
            samples: list[tuple[float, float]] = []
            stop = [False]
            thread = threading.Thread(target=sample_rss, args=(process, samples, stop), daemon=True)
            thread.start()
            wall = asyncio.run(run_level(load, clients, args.requests, args.max_seconds))
            stop[0] = True
            thread.join()
            rss = np.array([m for _, m in samples])
            tenth = max(1, len(rss) // 10)
            lat = np.array(load.latencies) * 1000
            done = len(load.latencies) + len(load.bad_latencies) + len(load.failures)
            level = {
                "clients": clients, "requests": done, "wall_s": round(wall, 1),
                "good": len(load.latencies), "bad": len(load.bad_latencies), "errors": len(load.failures),
                "throughput_good_per_s": round(len(load.latencies) / wall, 2),
                "latency_ms": {"p50": round(float(np.percentile(lat, 50)), 1), "p90": round(float(np.percentile(lat, 90)), 1),
                               "p99": round(float(np.percentile(lat, 99)), 1), "max": round(float(lat.max()), 1)},
                "bad_latency_ms_p50": round(float(np.median(load.bad_latencies)) * 1000, 1) if load.bad_latencies else None,
                "statuses": dict(sorted(load.statuses.items())),
                "rss_mb": {"first_tenth_mean": round(float(rss[:tenth].mean()), 1),
                           "last_tenth_mean": round(float(rss[-tenth:].mean()), 1),
                           "max": round(float(rss.max()), 1), "samples": len(rss)},
                "failures": load.failures[:10],
            }
            report["levels"].append(level)
            print(json.dumps(level), flush=True)
        metrics = httpx.get(url + "/metrics", timeout=10).text
        report["server_metrics"] = [line for line in metrics.splitlines()
                                    if line.startswith(("asdlab_errors_total", "asdlab_requests_total"))]
    finally:
        os.killpg(server.pid, signal.SIGTERM)
        server.wait(timeout=60)
        log.close()
    print("\nclients  requests  good/s   p50 ms  p99 ms  errors  RSS MB first -> last tenth (max)")
    for level in report["levels"]:
        rss = level["rss_mb"]
        print(f"{level['clients']:7d}  {level['requests']:8d}  {level['throughput_good_per_s']:6.1f}  "
              f"{level['latency_ms']['p50']:7.1f} {level['latency_ms']['p99']:7.1f}  {level['errors']:6d}  "
              f"{rss['first_tenth_mean']} -> {rss['last_tenth_mean']} ({rss['max']})")
    if args.out is not None:
        args.out.parent.mkdir(parents=True, exist_ok=True)
        args.out.write_text(json.dumps(report, indent=2) + "\n")
    if args.work is None:
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
