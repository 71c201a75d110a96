"""EfficientAT MobileNetV3 (mn04): architecture sizes, seams, front end, checkpoint checks (no weights needed)."""

from __future__ import annotations

import hashlib

import numpy as np
import pytest
import torch

from asdlab.encoders import create_encoder
from asdlab.encoders.mobilenet import (
    EfficientATFrontEnd,
    EfficientATTagger,
    MobileNetV3,
    check_mn04_state_dict,
    download_mn04_weights,
    load_mn04_weights,
    mobilenet_mn04,
)
from asdlab.errors import CheckpointError, ConfigError
from asdlab.features.fbank import kaldi_mel_banks


@pytest.fixture(scope="module")
def model() -> MobileNetV3:
    torch.manual_seed(0)
    return mobilenet_mn04().eval()


def test_sizes_match_the_released_mn04(model):
    # Counts of the released mn04_as_mAP_432.pt: 312 tensors, 983,599 trainable values, 384-d embedding.
    assert len(model.state_dict()) == 312
    assert sum(p.numel() for p in model.parameters()) == 983_599
    assert model.embed_dim == 384
    assert isinstance(create_encoder("mobilenet-mn04"), MobileNetV3)


def test_seams_agree(model):
    mel = torch.randn(2, 1, 128, 64)
    with torch.no_grad():
        logits = model(mel)
        maps = model.feature_maps(mel)
        fmap = model.forward_features(mel)
        embedding = model.embed(mel)
    assert logits.shape == (2, 527)
    assert len(maps) == 17 and torch.equal(maps[-1], fmap)
    assert fmap.shape == (2, 384, 4, 2)  # stride 32 in both axes
    assert torch.allclose(embedding, model.pool(fmap))
    # The head's own pooling equals `pool`: logits from the embedding through the MLP are the same.
    assert torch.allclose(model.classifier[2:](embedding), logits, atol=1e-6)


def test_gradient_reaches_every_parameter():
    torch.manual_seed(1)
    model = mobilenet_mn04().train()
    model(torch.randn(2, 1, 128, 32)).sum().backward()
    missing = [name for name, p in model.named_parameters() if p.grad is None or not p.grad.abs().sum() > 0]
    assert missing == []


def test_front_end_matches_a_numpy_computation():
    sample_rate, hop = 32000, 320
    waveform = torch.from_numpy(np.random.default_rng(0).standard_normal((1, 3201)).astype(np.float32))
    mel = EfficientATFrontEnd()(waveform)
    assert mel.shape == (1, 1, 128, 1 + 3200 // hop)

    x = waveform[0].double().numpy()
    x = x[1:] - 0.97 * x[:-1]
    x = np.pad(x, 512, mode="reflect")
    window = np.zeros(1024)
    window[112:912] = np.hanning(800)  # symmetric Hann of 800, centred in the 1024-point frame
    frames = np.stack([x[t * hop : t * hop + 1024] * window for t in range(mel.shape[-1])])
    power = np.abs(np.fft.rfft(frames, axis=-1)) ** 2  # (T, 513)
    banks = kaldi_mel_banks(128, 1024, sample_rate, 0.0, 15000.0, dtype=torch.float64).numpy()
    expected = (np.log(power @ banks.T + 1e-5) + 4.5) / 5.0  # (T, 128)
    np.testing.assert_allclose(mel[0, 0].numpy(), expected.T, atol=2e-4)


def test_tagger_upsamples_16k_to_32k():
    tagger = EfficientATTagger(sample_rate=16000)
    t = torch.arange(16000) / 16000
    up = tagger.to_front_rate(torch.sin(2 * torch.pi * 440 * t)[None])
    assert up.shape == (1, 32000)
    t32 = torch.arange(32000) / 32000
    inner = slice(2000, 30000)  # away from the zero-padded edges
    assert torch.allclose(up[0, inner], torch.sin(2 * torch.pi * 440 * t32)[inner], atol=1e-3)
    with torch.no_grad():
        assert tagger.eval()(torch.randn(2, 16000)).shape == (2, 527)
        assert tagger.embed(torch.randn(2, 16000)).shape == (2, 384)


def test_tagger_rejects_rates_that_do_not_divide_32k():
    with pytest.raises(ConfigError, match="44100"):
        EfficientATTagger(sample_rate=44100)


def test_state_dict_check_names_bad_keys(model):
    state = dict(model.state_dict())
    state["classifier.5.weights"] = state.pop("classifier.5.weight")
    state["features.16.1.bias"] = torch.zeros(7)
    with pytest.raises(CheckpointError) as info:
        check_mn04_state_dict(model, state)
    message = str(info.value)
    assert "missing (1): classifier.5.weight" in message
    assert "unexpected (1): classifier.5.weights" in message
    assert "features.16.1.bias: checkpoint (7,) vs model (384,)" in message


def test_load_round_trip_and_errors(model, tmp_path):
    path = tmp_path / "mn04.pt"
    torch.save(model.state_dict(), path)
    loaded = load_mn04_weights(path)
    mel = torch.randn(1, 1, 128, 40)
    with torch.no_grad():
        assert torch.equal(loaded(mel), model(mel))

    state = dict(model.state_dict())
    del state["features.4.block.2.conc_se_layers.0.fc1.bias"]
    torch.save(state, path)
    with pytest.raises(CheckpointError, match=r"features\.4\.block\.2\.conc_se_layers\.0\.fc1\.bias"):
        load_mn04_weights(path)

    path.write_bytes(b"not a checkpoint")
    with pytest.raises(CheckpointError, match="mn04.pt"):
        load_mn04_weights(path)


def test_download_verifies_the_hash(tmp_path):
    # A file:// URL stands in for the release (no network in tests).
    source = tmp_path / "release" / "weights.pt"
    source.parent.mkdir()
    source.write_bytes(b"weights")
    digest = hashlib.sha256(b"weights").hexdigest()
    path = download_mn04_weights(tmp_path / "cache", url=source.as_uri(), sha256=digest)
    assert path == tmp_path / "cache" / "weights.pt" and path.read_bytes() == b"weights"
    assert download_mn04_weights(tmp_path / "cache", url="file:///nonexistent/weights.pt", sha256=digest) == path

    with pytest.raises(CheckpointError, match="does not match"):
        download_mn04_weights(tmp_path / "other", url=source.as_uri(), sha256="0" * 64)
    assert not any((tmp_path / "other").iterdir())


def test_layer_level_embeddings_and_band_pooling():
    torch.manual_seed(2)
    full = mobilenet_mn04().eval()
    mid = mobilenet_mn04(embed_layer=10).eval()
    mid.load_state_dict(full.state_dict(), strict=True)  # the same network: only the embedded layer differs
    mel = torch.randn(2, 1, 128, 96)
    with torch.no_grad():
        maps = full.feature_maps(mel)
        fmap = mid.forward_features(mel)
        assert torch.equal(fmap, maps[10])
        assert torch.equal(mid(mel), full(mel))  # the AudioSet head still uses the last layer
        band = mid.pool(fmap, "band-mean")
    # layer 10: 80 x 0.4 = 32 channels, 128 bins halved by the stem and three stride-2 blocks = 8 bands
    assert fmap.shape == (2, 32, 8, 6) and (mid.embed_dim, mid.embed_bands) == (32, 8)
    assert band.shape == (2, mid.pooled_dim("band-mean")) == (2, 256) and mid.pooled_dim("mean") == 32
    # channel-major flattening: value (c, f) sits at c * 8 + f
    assert torch.allclose(band[1, 5 * 8 + 3], fmap[1, 5, 3].mean())
    assert torch.allclose(mid.embed(mel), fmap.mean(dim=(2, 3)))
    assert (full.embed_layer, full.embed_bands, full.pooled_dim("band-mean")) == (16, 4, 1536)
    # band-mean-max: the same means, then each row's maximum over time, flattened the same way
    both = mid.pool(fmap, "band-mean-max")
    assert both.shape == (2, mid.pooled_dim("band-mean-max")) == (2, 512)
    assert torch.equal(both[:, :256], band)
    assert torch.equal(both[1, 256 + 5 * 8 + 3], fmap[1, 5, 3].max())


def test_layer_and_pooling_errors():
    with pytest.raises(ConfigError, match="embed_layer=17 is not a layer index of the 17 feature layers"):
        mobilenet_mn04(embed_layer=17)
    model = mobilenet_mn04(embed_layer=-1)
    assert model.embed_layer == 16
    with pytest.raises(ConfigError, match="must be one of mean, band-mean, band-mean-max, got 'max'"):
        model.pooled_dim("max")
    with pytest.raises(ValueError, match="band-mean expects 4 frequency rows \\(128 mel bins\\), got 2"):
        model.pool(torch.zeros(1, 384, 2, 3), "band-mean")
