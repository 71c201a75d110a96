"""The GPU branches: fast decoder convolutions and the compiled DAP objective in bf16, no host sync in the
DAP step, the training loop's bf16 + fused AdamW path, the fbank under autocast, embedding on the GPU.
Skipped without CUDA; `benchmarks/gpu_check.sh` runs them (`pytest -m cuda`)."""

import wave

import numpy as np
import pytest
import torch

from asdlab.data.records import ClipRecord
from asdlab.embeddings.extract import embed_clips
from asdlab.encoders.backbone import build_backbone
from asdlab.encoders.eat import DECODER_CONVS, EATDecoder, create_eat_decoder, eat_tiny
from asdlab.features.normalize import EATFrontEnd
from asdlab.training.loop import TrainSettings, read_checkpoint, resolve_precision, train
from asdlab.training.ufo import DAPTask

pytestmark = [pytest.mark.cuda, pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA GPU")]
DEVICE = "cuda"


def _keep(rows, patches, kept, seed=0):
    generator = torch.Generator().manual_seed(seed)
    keep = torch.zeros(rows, patches, dtype=torch.bool)
    for r in range(rows):
        keep[r, torch.randperm(patches, generator=generator)[:kept]] = True
    return keep.to(DEVICE)


@pytest.mark.parametrize("conv", DECODER_CONVS)
def test_decoder_convs_agree_with_fp32_in_bf16_at_eat_base_width(conv):
    torch.manual_seed(0)
    decoder = EATDecoder(embed_dim=768, num_layers=2, groups=16).to(DEVICE)
    keep = _keep(4, 64 * 8, 102)
    patches = torch.randn(4, 102, 768, device=DEVICE)
    noise = decoder.mask_noise(4, 512, generator=torch.Generator(DEVICE).manual_seed(1), device=DEVICE)
    reference = decoder(patches, keep, noise=noise)
    decoder.conv = conv
    with torch.autocast("cuda", dtype=torch.bfloat16):
        out = decoder(patches, keep, noise=noise)
    out.float().square().mean().backward()
    assert all(p.grad is not None and torch.isfinite(p.grad).all() for p in decoder.parameters())
    cosine = torch.nn.functional.cosine_similarity(out.float().flatten(), reference.flatten(), dim=0)
    assert cosine > 0.999


def _task(**options):
    torch.manual_seed(0)
    return DAPTask(eat_tiny(), create_eat_decoder("eat-tiny", **options), clones=4).to(DEVICE).train()


def test_the_dap_objective_never_waits_for_the_gpu():
    task = _task(conv="matmul")
    generator = torch.Generator(DEVICE).manual_seed(0)
    x = torch.randn(3, 1, 64, 128, device=DEVICE)
    keep = task.sample_masks(3, 4, generator=generator)
    noise = task.decoder.mask_noise(keep.shape[0], keep.shape[1], generator=generator, device=DEVICE)
    task.objective(x, keep, noise)  # warm-up: lazy initialisations may sync once
    torch.cuda.synchronize()
    torch.cuda.set_sync_debug_mode("error")  # any synchronising call inside raises
    try:
        with torch.autocast("cuda", dtype=torch.bfloat16):
            loss = task.objective(x, keep, noise)[0]
    finally:
        torch.cuda.set_sync_debug_mode("default")
    assert torch.isfinite(loss)


def test_the_compiled_objective_equals_eager_on_the_gpu():
    task = _task(conv="matmul")
    generator = torch.Generator(DEVICE).manual_seed(0)
    x = torch.randn(2, 1, 64, 128, device=DEVICE)
    keep = task.sample_masks(2, 4, generator=generator)
    noise = task.decoder.mask_noise(keep.shape[0], keep.shape[1], generator=generator, device=DEVICE)
    with torch.autocast("cuda", dtype=torch.bfloat16):
        eager = task.objective(x, keep, noise)
        compiled = torch.compile(task.objective, fullgraph=True)(x, keep, noise)
    for a, b in zip(compiled, eager, strict=True):
        torch.testing.assert_close(a.float(), b.float(), rtol=2e-2, atol=2e-2)


def test_training_on_the_gpu_is_bf16_with_fused_adamw_and_resumes(tmp_path):
    assert resolve_precision("auto", "cuda") == "bf16-mixed" and resolve_precision("auto", "cpu") == "32-true"
    data = [{"spectrogram": torch.randn(1, 64, 128, generator=torch.Generator().manual_seed(i))} for i in range(8)]
    settings = TrainSettings(max_steps=4, batch_size=2, lr=1e-3, accelerator="cuda", precision="auto",
                             checkpoint_every=2, log_every=1)
    straight = train(_task(), data, settings, out_dir=tmp_path / "straight")

    class Killed(Exception):
        pass

    def kill_at_three(report):
        if report.step == 3:
            raise Killed

    with pytest.raises(Killed):
        train(_task(), data, settings, out_dir=tmp_path / "resumed", progress=kill_at_three)
    resumed = train(_task(), data, settings, out_dir=tmp_path / "resumed", resume=True)
    assert resumed.resumed_from == 2
    a = read_checkpoint(straight.checkpoint)["task"]
    b = read_checkpoint(resumed.checkpoint)["task"]
    for name in a:
        torch.testing.assert_close(a[name], b[name], rtol=1e-3, atol=1e-4, msg=name)


def test_fbank_under_autocast_on_the_gpu_equals_fp32_on_the_cpu():
    front_end = EATFrontEnd(target_frames=208)
    waveform = 0.1 * torch.randn(2, 32000, generator=torch.Generator().manual_seed(0))
    expected = front_end(waveform)
    with torch.autocast("cuda", dtype=torch.bfloat16):
        on_gpu = front_end.to(DEVICE)(waveform.to(DEVICE))
    assert on_gpu.dtype == torch.float32
    torch.testing.assert_close(on_gpu.cpu(), expected, rtol=1e-4, atol=2e-3)


def test_embedding_on_the_gpu_with_workers_matches_the_cpu(tmp_path):
    records = []
    rng = np.random.default_rng(0)
    for i in range(6):
        path = tmp_path / f"section_00_source_train_normal_{i:04d}_noAttribute.wav"
        with wave.open(str(path), "wb") as f:
            f.setnchannels(1)
            f.setsampwidth(2)
            f.setframerate(16000)
            f.writeframes((rng.standard_normal(32000) * 3000).astype("<i2").tobytes())
        records.append(ClipRecord(path=path, machine="fan", section="00", split="train", label="normal",
                                  domain="source"))
    backbone = build_backbone("eat-tiny", target_frames=208, seed=0)
    on_cpu = embed_clips(records, backbone, batch_size=4, device="cpu")
    on_gpu = embed_clips(records, backbone, batch_size=4, device=DEVICE, num_workers=2)  # bf16 by default
    cosine = torch.nn.functional.cosine_similarity(torch.from_numpy(on_gpu.embeddings),
                                                   torch.from_numpy(on_cpu.embeddings), dim=1)
    assert len(on_gpu.records) == 6 and bool((cosine > 0.99).all())
