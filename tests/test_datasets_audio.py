"""The speech dataset: frames of PCM WAV files."""

from __future__ import annotations

import wave
from pathlib import Path

import numpy as np
import pytest
import torch

from vqbench.datasets import DatasetUnavailableError, load_dataset
from vqbench.datasets.speech import DEBIAN_PATH


def write_wav(path: Path, samples: np.ndarray, rate: int = 8000, width: int = 2) -> Path:
    """Write integer samples, (n,) mono or (n, channels), as PCM of ``width`` bytes."""
    samples = samples if samples.ndim == 2 else samples[:, None]
    if width == 1:
        data = (samples + 128).astype(np.uint8).tobytes()
    else:
        data = samples.astype("<i2").tobytes()
    path.parent.mkdir(parents=True, exist_ok=True)
    with wave.open(str(path), "wb") as w:
        w.setnchannels(samples.shape[1])
        w.setsampwidth(width)
        w.setframerate(rate)
        w.writeframes(data)
    return path


def tone(n: int, period: int, amplitude: int, phase: int = 0) -> np.ndarray:
    t = np.arange(n) + phase
    return np.round(amplitude * np.sin(2 * np.pi * t / period)).astype(np.int64)


@pytest.fixture
def folder(tmp_path) -> Path:
    """Five tiny 16-bit mono recordings with distinct tones."""
    for k in range(5):
        write_wav(tmp_path / "wav" / f"utt{k}.wav", tone(1000 + 10 * k, period=20 + 5 * k, amplitude=8000))
    return tmp_path / "wav"


def test_frames_from_a_folder(folder):
    ds = load_dataset("speech", path=str(folder), frame_len=100)
    assert ds.kind == "audio" and ds.train.dtype == torch.float32
    assert ds.train.shape[1:] == (100,) and ds.eval.shape[1:] == (100,)
    assert len(ds.train) == 4 * 10 and len(ds.eval) == 10  # one file of five is eval; 10 frames per file
    assert ds.meta["files"] == 5 and ds.meta["sample_rate"] == 8000
    assert ds.train.abs().max() == pytest.approx(8000 / 32768, abs=1e-6)
    # frames are the files' samples, scaled from int16, and train and eval come from different files
    sources = {}
    for k in range(5):
        samples = tone(1000 + 10 * k, period=20 + 5 * k, amplitude=8000) / 32768
        for start in range(0, 1000, 100):
            sources[tuple(np.float32(samples[start : start + 100]).tolist())] = k
    train_files = {sources[tuple(f)] for f in ds.train.tolist()}
    eval_files = {sources[tuple(f)] for f in ds.eval.tolist()}
    assert len(train_files) == 4 and len(eval_files) == 1 and not train_files & eval_files
    again = load_dataset("speech", path=str(folder), frame_len=100)
    assert again.checksum == ds.checksum
    seeds = {load_dataset("speech", path=str(folder), frame_len=100, seed=s).checksum for s in range(4)}
    assert len(seeds) > 1  # the seed picks the eval file


def test_hop_caps_and_env(folder, monkeypatch):
    monkeypatch.setenv("VQBENCH_SPEECH", str(folder))
    ds = load_dataset("speech", frame_len=100, hop=50)
    assert ds.meta["frames_available"]["train"] == 4 * 19 and ds.meta["path"] == str(folder.resolve())
    capped = load_dataset("speech", frame_len=100, hop=50, max_train=7, max_eval=3)
    assert capped.train.shape == (7, 100) and capped.eval.shape == (3, 100)
    full = {tuple(f) for f in ds.train.tolist()}
    assert all(tuple(f) in full for f in capped.train.tolist())


def test_silent_frames_are_dropped(tmp_path):
    for k in range(2):
        samples = np.concatenate([np.zeros(300, np.int64), tone(300, 16, 4000)])
        write_wav(tmp_path / f"s{k}.wav", samples)
    ds = load_dataset("speech", path=str(tmp_path), frame_len=100)
    assert len(ds.train) == 3 and len(ds.eval) == 3
    assert float(ds.train.square().mean(1).sqrt().min()) > 0.05
    kept = load_dataset("speech", path=str(tmp_path), frame_len=100, min_rms=0)
    assert len(kept.train) == 6 and float(kept.train.abs().amax(1).min()) == 0.0


def test_stereo_and_8_bit_are_mixed_to_mono(tmp_path):
    left, right = tone(400, 20, 10000), tone(400, 20, 2000, phase=5)
    write_wav(tmp_path / "a" / "stereo.wav", np.stack([left, right], axis=1))
    write_wav(tmp_path / "a" / "other.wav", np.stack([right, left], axis=1))
    ds = load_dataset("speech", path=str(tmp_path / "a"), frame_len=100)
    mixed = {tuple(f) for f in torch.cat([ds.train, ds.eval]).tolist()}
    expected = np.float32((left[:100] + right[:100]) / 65536).tolist()
    assert tuple(expected) in mixed

    write_wav(tmp_path / "b" / "x.wav", tone(400, 20, 100), width=1)
    write_wav(tmp_path / "b" / "y.wav", tone(400, 25, 100), width=1)
    eight = load_dataset("speech", path=str(tmp_path / "b"), frame_len=100)
    assert eight.train.abs().max() == pytest.approx(100 / 128, abs=1e-6)


def test_one_file_is_split_in_time(tmp_path):
    write_wav(tmp_path / "long.wav", tone(1000, 20, 5000))
    ds = load_dataset("speech", path=str(tmp_path), frame_len=100)
    assert len(ds.train) == 8 and len(ds.eval) == 2
    samples = tone(1000, 20, 5000) / 32768
    assert ds.eval.flatten().tolist() == np.float32(samples[800:]).tolist()


def test_missing_folder_says_how_to_get_speech(tmp_path, monkeypatch):
    monkeypatch.setenv("VQBENCH_SPEECH", str(tmp_path / "nowhere"))
    with pytest.raises(DatasetUnavailableError) as info:
        load_dataset("speech")
    text = str(info.value)
    assert "does not exist" in text and "$VQBENCH_SPEECH" in text
    assert "apt-get install asterisk-core-sounds-en-wav" in text
    (tmp_path / "empty").mkdir()
    with pytest.raises(DatasetUnavailableError, match="has no .wav files"):
        load_dataset("speech", path=str(tmp_path / "empty"))


def test_bad_files_and_options(tmp_path, folder):
    (tmp_path / "bad").mkdir()
    (tmp_path / "bad" / "broken.wav").write_bytes(b"RIFF\x00\x00\x00\x00WAVEjunk")
    with pytest.raises(
        ValueError, match=r"broken.wav: not a readable PCM WAV file .* expected uncompressed PCM"
    ):
        load_dataset("speech", path=str(tmp_path / "bad"))
    write_wav(tmp_path / "rates" / "a.wav", tone(500, 20, 1000), rate=8000)
    write_wav(tmp_path / "rates" / "b.wav", tone(500, 20, 1000), rate=16000)
    with pytest.raises(ValueError, match=r"mixes sample rates \[8000, 16000\] Hz"):
        load_dataset("speech", path=str(tmp_path / "rates"), frame_len=100)
    with pytest.raises(ValueError, match="no train frames of 5000 samples"):
        load_dataset("speech", path=str(folder), frame_len=5000)
    with pytest.raises(ValueError, match="frame_len must be an int >= 2, got 1"):
        load_dataset("speech", path=str(folder), frame_len=1)
    with pytest.raises(ValueError, match=r"min_rms must be a number in \[0, 1\), got -1"):
        load_dataset("speech", path=str(folder), min_rms=-1)


@pytest.mark.skipif(
    not Path(DEBIAN_PATH).is_dir(), reason="Debian's asterisk-core-sounds-en-wav is not installed"
)
def test_debian_speech(monkeypatch):
    monkeypatch.delenv("VQBENCH_SPEECH", raising=False)
    ds = load_dataset("speech", max_train=2000, max_eval=500)
    assert ds.train.shape == (2000, 256) and ds.eval.shape == (500, 256)
    assert ds.meta["sample_rate"] == 8000 and ds.meta["files"] > 500
    assert ds.meta["frames_available"]["train"] > 10000
    rms = ds.train.square().mean(1).sqrt()
    assert rms.min() >= 1e-3 and 0.01 < float(rms.median()) < 0.5  # speech levels, silence dropped
