"""The README's export-and-serve commands run as written, on a small own-recordings folder (curl lines need curl)."""

from __future__ import annotations

import json
import os
import re
import shlex
import shutil
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf

README = Path(__file__).resolve().parents[2] / "README.md"


def _serving_block() -> list[str]:
    blocks = re.findall(r"```bash\n(.*?)```", README.read_text(), flags=re.S)
    (block,) = [b for b in blocks if "asdlab export" in b and "curl" in b]
    return [line.split("  #")[0].strip() for line in block.strip().splitlines()]


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.mark.slow
def test_readme_export_score_serve_and_curl_commands(tmp_path, monkeypatch):
    """`asdlab` lines run in this process (the CLI's own entry point), `asdlab serve` as a real server process."""
    from asdlab.cli import main as cli_main

    pytest.importorskip("uvicorn", reason="the serve extra is not installed")
    rng = np.random.default_rng(0)
    for split, count in (("train", 8), ("test", 2)):
        folder = tmp_path / "my_data" / "MyPump" / split
        folder.mkdir(parents=True)
        for i in range(count):
            tone = np.sin(2 * np.pi * (200 + 10 * i) * np.arange(16000) / 16000)
            sf.write(folder / f"rec_{900 + i if split == 'test' else i:04d}.wav",
                     (0.2 * tone + rng.normal(0, 0.02, 16000)).astype(np.float32), 16000)
    env = {**os.environ, "PATH": f"{Path(sys.executable).parent}{os.pathsep}{os.environ['PATH']}"}
    monkeypatch.chdir(tmp_path)
    assert cli_main.main(["fit", "my_data", "--recipe", "baseline", "--out", "my_detector"]) == 0
    port = str(_free_port())
    server = None
    try:
        for line in _serving_block():
            line = line.replace("8000", port)
            if line.startswith("asdlab serve"):
                server = subprocess.Popen(shlex.split(line.rstrip("&").strip()), cwd=tmp_path, env=env,
                                          stdout=subprocess.PIPE, stderr=subprocess.STDOUT, start_new_session=True)
                deadline = time.monotonic() + 120
                while True:
                    try:
                        with urllib.request.urlopen(f"http://127.0.0.1:{port}/health", timeout=2) as answer:
                            assert json.loads(answer.read())["status"] == "ok"
                            break
                    except OSError:
                        assert time.monotonic() < deadline and server.poll() is None, server.stdout.read().decode()
                        time.sleep(0.2)
                continue
            if line.startswith("asdlab"):
                assert cli_main.main(shlex.split(line)[1:]) == 0, line
                continue
            if shutil.which("curl") is None:
                continue  # the request itself is tested in tests/unit/serve; here the command line is
            done = subprocess.run(shlex.split(line), cwd=tmp_path, env=env, capture_output=True, text=True, timeout=120)
            assert done.returncode == 0, (line, done.stdout, done.stderr)
            if line.startswith("curl"):
                (result,) = json.loads(done.stdout)["results"]
                assert result["file"] in ("rec_0900.wav", "upload") and result["machine"] == "MyPump"
        assert server is not None
    finally:
        if server is not None:
            os.killpg(server.pid, signal.SIGTERM)
            server.wait(timeout=30)
    assert (tmp_path / "my_detector.asdlab").is_file()
    assert (tmp_path / "scores" / "anomaly_score_MyPump_section_00_test.csv").is_file()
