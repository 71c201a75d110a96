"""The scoring service through FastAPI's TestClient: scores equal `asdlab score`'s, bounds answer 413/415/422, the
service keeps serving after each, and /metrics and the OpenAPI schema say what happened and what it takes."""

from __future__ import annotations

import io

import numpy as np
import pytest
import soundfile as sf

pytest.importorskip("fastapi", reason="the serve extra (fastapi) is not installed")
pytest.importorskip("httpx", reason="FastAPI's TestClient needs httpx")
from fastapi.testclient import TestClient  # noqa: E402

from asdlab.detector import load_detector  # noqa: E402
from asdlab.serve import ServeLimits, create_app  # noqa: E402


@pytest.fixture(scope="module")
def scored(tiny_detector_dir, tmp_path_factory):
    """The detector, its test clips, and the scores `Detector.score` (the CLI's path) wrote for them."""
    folder, root = tiny_detector_dir
    detector = load_detector(folder)
    result = detector.score(root, tmp_path_factory.mktemp("cli_scores"))
    (machine_scores,) = result.machines
    clips = sorted(root.rglob("test/*.wav"))
    return detector, clips, dict(zip(machine_scores.test_filenames.tolist(), machine_scores.test_scores.tolist())), machine_scores


@pytest.fixture()
def client(scored):
    detector = scored[0]
    limits = ServeLimits(max_request_bytes=200_000, max_clip_s=1.5, max_files=3)
    with TestClient(create_app(detector, limits=limits, source="tiny")) as test_client:
        yield test_client


def _wav(samples: np.ndarray, rate: int = 16000) -> bytes:
    buffer = io.BytesIO()
    sf.write(buffer, samples, rate, format="WAV", subtype="FLOAT")
    return buffer.getvalue()


def test_multipart_and_raw_scores_equal_the_cli_scores_exactly(client, scored):
    _, clips, cli, machine_scores = scored
    files = [("files", (p.name, p.read_bytes(), "audio/wav")) for p in clips[:3]]
    answer = client.post("/v1/score", files=files, data={"machine": "SynFan"})  # the only section: optional
    assert answer.status_code == 200, answer.text
    results = answer.json()["results"]
    assert [r["file"] for r in results] == [p.name for p in clips[:3]] and answer.json()["skipped"] == []
    for r in results:
        assert r["score"] == cli[r["file"]] and r["section"] == "00"
        assert r["threshold"] == machine_scores.threshold and r["decision"] == int(r["score"] > r["threshold"])
        assert r["percentile"] == pytest.approx(100 * np.mean(machine_scores.train_scores <= r["score"]))
    raw = client.post("/v1/score?machine=SynFan&section=00&filename=x.wav", content=clips[3].read_bytes(),
                      headers={"content-type": "audio/wav"})
    assert raw.status_code == 200 and raw.json()["results"][0]["score"] == cli[clips[3].name]
    assert raw.json()["results"][0]["file"] == "x.wav"


def test_bounds_and_bad_input_get_their_4xx_and_the_service_goes_on(client, scored):
    _, clips, cli, _ = scored
    good = clips[0].read_bytes()
    cases = [
        # (request, status, kind, text in detail)
        (dict(files=[("files", (f"{i}.wav", good, "audio/wav")) for i in range(4)], data={"machine": "SynFan"}),
         413, "too_large", "more than 3 files"),
        (dict(content=b"\0" * 300_000, headers={"content-type": "audio/wav"}, params={"machine": "SynFan"}),
         413, "too_large", "200000-byte limit"),
        (dict(content=_wav(np.full(32000, 0.1, np.float32)), headers={"content-type": "audio/wav"},
              params={"machine": "SynFan"}), 413, "too_large", "clip of 2.0 s is longer than the 1.5 s limit"),
        (dict(content=b"hello, not audio" * 10, headers={"content-type": "audio/wav"}, params={"machine": "SynFan"}),
         415, "not_audio", "not an audio file"),
        (dict(content=good, headers={"content-type": "text/plain"}, params={"machine": "SynFan"}),
         415, "not_audio", "content type 'text/plain'"),
        (dict(content=good, headers={"content-type": "audio/wav"}, params={"machine": "NoSuchMachine"}),
         422, "unknown_machine", "unknown machine 'NoSuchMachine': this detector knows SynFan"),
        (dict(content=good, headers={"content-type": "audio/wav"}, params={"machine": "SynFan", "section": "07"}),
         422, "unknown_machine", "SynFan has no section '07'"),
        (dict(content=good, headers={"content-type": "audio/wav"}), 422, "unknown_machine", "no machine given"),
        (dict(content=_wav(np.zeros(8000, np.float32)), headers={"content-type": "audio/wav"},
              params={"machine": "SynFan"}), 422, "unusable_audio", "all-silent audio"),
        (dict(content=_wav(np.full(28, 0.1, np.float32)), headers={"content-type": "audio/wav"},
              params={"machine": "SynFan"}), 422, "unusable_audio", "shorter than one"),
        (dict(content=_wav(np.array([0.1, np.nan] * 400, np.float32)), headers={"content-type": "audio/wav"},
              params={"machine": "SynFan"}), 422, "unusable_audio", "NaN or inf"),
    ]
    for request, status, kind, text in cases:
        answer = client.post("/v1/score", **request)
        assert answer.status_code == status, (text, answer.text)
        assert answer.json()["kind"] == kind and text in answer.json()["detail"], answer.json()
        # ... and the next good request is served as before.
        after = client.post("/v1/score", content=good, headers={"content-type": "audio/wav"}, params={"machine": "SynFan"})
        assert after.status_code == 200 and after.json()["results"][0]["score"] == cli[clips[0].name]
    metrics = client.get("/metrics").text
    assert 'asdlab_errors_total{kind="too_large"} 3.0' in metrics
    assert 'asdlab_errors_total{kind="not_audio"} 2.0' in metrics
    assert 'asdlab_errors_total{kind="unknown_machine"} 3.0' in metrics
    assert 'asdlab_errors_total{kind="unusable_audio"} 3.0' in metrics
    assert 'asdlab_requests_total{endpoint="/v1/score",method="POST",status="200"} 11.0' in metrics
    assert 'asdlab_request_duration_seconds_count{endpoint="/v1/score"} 22.0' in metrics


def test_a_bad_file_among_good_ones_is_skipped_with_its_reason(client, scored):
    _, clips, cli, _ = scored
    files = [("files", ("good.wav", clips[1].read_bytes(), "audio/wav")),
             ("files", ("broken.wav", b"RIFF\x00\x00not a wav", "audio/wav"))]
    answer = client.post("/v1/score", files=files, data={"machine": "SynFan", "section": "00"})
    assert answer.status_code == 200
    assert [r["score"] for r in answer.json()["results"]] == [cli[clips[1].name]]
    (skipped,) = answer.json()["skipped"]
    assert skipped["file"] == "broken.wav" and skipped["kind"] == "not_audio" and "not an audio file" in skipped["problem"]


def test_detector_health_page_and_openapi(client):
    info = client.get("/v1/detector").json()
    assert info["source"] == "tiny" and info["recipe"] == "tiny-test" and info["backbone"] == "two-branch-cnn-small"
    (machine,) = info["machines"]
    assert machine["machine"] == "SynFan" and machine["training_clips"] == 10
    assert sum(machine["training_scores"]["counts"]) == 10 and len(machine["training_scores"]["edges"]) == 21
    assert info["limits"]["max_files"] == 3
    assert client.get("/health").json() == {"status": "ok", "machines": 1}
    page = client.get("/")
    assert page.status_code == 200 and 'id="files"' in page.text and "/v1/score" in page.text
    schema = client.get("/openapi.json").json()
    score = schema["paths"]["/v1/score"]["post"]
    content = score["requestBody"]["content"]
    assert set(content) == {"multipart/form-data", "audio/wav", "audio/flac", "application/octet-stream"}
    assert content["multipart/form-data"]["schema"]["required"] == ["files", "machine"]
    assert {"200", "400", "413", "415", "422"} <= set(score["responses"])
    assert [p["name"] for p in score["parameters"]] == ["machine", "section", "filename"]
    assert {"/v1/detector", "/health", "/metrics"} <= set(schema["paths"])


def test_a_streamed_body_over_the_limit_is_cut_off_with_413(client, scored):
    """Without a Content-Length the body is counted as it arrives, and refused once past the limit."""
    _, clips, cli, _ = scored
    chunks = iter([b"RIFF" + b"\0" * 150_000, b"\0" * 100_000])
    answer = client.post("/v1/score", content=chunks, params={"machine": "SynFan"}, headers={"content-type": "audio/wav"})
    assert answer.status_code == 413 and answer.json()["kind"] == "too_large"
    assert "200000-byte limit" in answer.json()["detail"]
    after = client.post("/v1/score", content=clips[2].read_bytes(), params={"machine": "SynFan"},
                        headers={"content-type": "audio/wav"})
    assert after.status_code == 200 and after.json()["results"][0]["score"] == cli[clips[2].name]
    assert 'asdlab_errors_total{kind="too_large"} 1.0' in client.get("/metrics").text
