"""Speech: frames of the PCM WAV files in a folder (read with the standard library's ``wave``).

Multi-channel files are mixed to mono; samples are scaled to [-1, 1). Train and eval come from
different files (a seeded split of the files; with one file, its last part is eval), so overlapping
frames never leak between them. Near-silent frames (RMS below ``min_rms``) are dropped.
"""

from __future__ import annotations

import functools
import wave
from pathlib import Path

import numpy as np
import torch

from ._base import (
    Dataset,
    DatasetUnavailableError,
    check_count,
    check_fraction,
    file_key,
    make_dataset,
    permutation,
    resolve_folder,
)

ENV = "VQBENCH_SPEECH"
DEBIAN_PATH = "/usr/share/asterisk/sounds/en_US_f_Allison"  # Debian's asterisk-core-sounds-en-wav
HOW_TO_GET = (
    "install Debian's package of recorded English prompts (apt-get install asterisk-core-sounds-en-wav, "
    f"into {DEBIAN_PATH}), or pass path=FOLDER of PCM .wav files, or set {ENV}=FOLDER"
)


@functools.lru_cache(maxsize=4096)
def _read_wav(key: tuple[str, int, int]) -> tuple[torch.Tensor, float, int]:
    """(integer mono samples summed over channels, full scale of that sum, sample rate); cached."""
    path = key[0]
    try:
        with wave.open(path, "rb") as w:
            channels, width, rate = w.getnchannels(), w.getsampwidth(), w.getframerate()
            raw = w.readframes(w.getnframes())
    except (wave.Error, EOFError, OSError) as exc:
        raise ValueError(
            f"{path}: not a readable PCM WAV file ({exc}); expected uncompressed PCM, 8 to 32-bit"
        ) from exc
    if width == 1:
        ints = np.frombuffer(raw, np.uint8).astype(np.int64) - 128
    elif width == 2:
        ints = np.frombuffer(raw, "<i2").astype(np.int64)
    elif width == 3:
        b = np.frombuffer(raw, np.uint8).reshape(-1, 3).astype(np.int64)
        ints = b[:, 0] | (b[:, 1] << 8) | (b[:, 2] << 16)
        ints = np.where(ints >= 1 << 23, ints - (1 << 24), ints)
    elif width == 4:
        ints = np.frombuffer(raw, "<i4").astype(np.int64)
    else:
        raise ValueError(f"{path}: {8 * width}-bit samples; expected 8, 16, 24 or 32-bit PCM")
    ints = ints[: len(ints) - len(ints) % channels].reshape(-1, channels).sum(axis=1)
    full_scale = float(channels * (1 << (8 * width - 1)))
    return torch.from_numpy(ints), full_scale, rate


def wav_files(folder: Path) -> list[Path]:
    """The ``.wav`` files under ``folder`` (recursively), in a fixed order."""
    return sorted(p for p in folder.rglob("*") if p.suffix.lower() == ".wav" and p.is_file())


def speech(
    *,
    seed: int = 0,
    path: str | None = None,
    frame_len: int = 256,
    hop: int | None = None,
    max_train: int | None = 16384,
    max_eval: int | None = 4096,
    eval_fraction: float = 0.2,
    min_rms: float = 1e-3,
) -> Dataset:
    """Frames (N, frame_len) of the WAV files in a folder, values in [-1, 1).

    ``hop`` defaults to ``frame_len``; ``max_train`` / ``max_eval`` cap the frames (a seeded subset;
    None: all); ``eval_fraction`` of the files go to eval; ``min_rms=0`` keeps silent frames.
    """
    check_count(frame_len, "frame_len", minimum=2)
    hop = frame_len if hop is None else hop
    check_count(hop, "hop")
    check_count(max_train, "max_train", allow_none=True)
    check_count(max_eval, "max_eval", allow_none=True)
    check_fraction(eval_fraction)
    if not isinstance(min_rms, (int, float)) or isinstance(min_rms, bool) or not 0 <= min_rms < 1:
        raise ValueError(f"min_rms must be a number in [0, 1), got {min_rms!r}")
    folder, origin = resolve_folder(path, ENV, DEBIAN_PATH)
    files = wav_files(folder) if folder.is_dir() else []
    if not files:
        state = "has no .wav files" if folder.is_dir() else "does not exist"
        raise DatasetUnavailableError(
            f"speech: {folder} (from {origin}) {state}. To get speech: {HOW_TO_GET}"
        )
    decoded = [_read_wav(file_key(f)) for f in files]
    rates = sorted({rate for _, _, rate in decoded})
    if len(rates) > 1:
        raise ValueError(f"speech: {folder} mixes sample rates {rates} Hz; expected files of one sample rate")

    if len(files) == 1:  # split one recording in time: the last eval_fraction is eval
        ints, scale, _ = decoded[0]
        cut = int(round(len(ints) * (1 - eval_fraction)))
        groups = {"train": [(ints[:cut], scale)], "eval": [(ints[cut:], scale)]}
    else:
        n_eval_files = min(max(1, round(len(files) * eval_fraction)), len(files) - 1)
        order = permutation(len(files), seed, "speech:files").tolist()
        eval_ids = sorted(order[:n_eval_files])
        train_ids = sorted(order[n_eval_files:])
        groups = {
            "train": [decoded[i][:2] for i in train_ids],
            "eval": [decoded[i][:2] for i in eval_ids],
        }
    parts, counts = {}, {}
    for part, cap in (("train", max_train), ("eval", max_eval)):
        starts = _frame_starts(groups[part], frame_len, hop, min_rms)
        counts[part] = len(starts)
        if not len(starts):
            raise ValueError(
                f"speech: no {part} frames of {frame_len} samples above min_rms={min_rms} in {folder}; "
                "use longer files, a shorter frame_len or a lower min_rms"
            )
        if cap is not None and cap < len(starts):
            starts = starts[permutation(len(starts), seed, f"speech:{part}")[:cap]]
        parts[part] = _gather(groups[part], starts, frame_len)
    meta = {
        "origin": "WAV folder",
        "path": str(folder.resolve()),
        "files": len(files),
        "sample_rate": rates[0],
        "frames_available": counts,
    }
    return make_dataset("speech", "audio", parts["train"], parts["eval"], meta)


def _frame_starts(
    signals: list[tuple[torch.Tensor, float]], frame_len: int, hop: int, min_rms: float
) -> torch.Tensor:
    """(signal index, start sample) of every frame whose RMS reaches ``min_rms``, shape (K, 2)."""
    found = []
    for k, (ints, scale) in enumerate(signals):
        if len(ints) < frame_len:
            continue
        starts = torch.arange(0, len(ints) - frame_len + 1, hop)
        # running sum of squares: integers, exact in float64 for 8 and 16-bit samples
        cumulative = torch.cat(
            [torch.zeros(1, dtype=torch.float64), ints.to(torch.float64).square().cumsum(0)]
        )
        energy = cumulative[starts + frame_len] - cumulative[starts]
        starts = starts[energy >= (min_rms * scale) ** 2 * frame_len]
        found.append(torch.stack([torch.full_like(starts, k), starts], dim=1))
    return torch.cat(found) if found else torch.empty(0, 2, dtype=torch.long)


def _gather(signals: list[tuple[torch.Tensor, float]], starts: torch.Tensor, frame_len: int) -> torch.Tensor:
    """The frames at ``starts`` as float32 in [-1, 1) (integer / full scale, rounded once)."""
    out = torch.empty(len(starts), frame_len)
    offsets = torch.arange(frame_len)
    for k in starts[:, 0].unique().tolist():
        rows = (starts[:, 0] == k).nonzero().squeeze(1)
        ints, scale = signals[k]
        out[rows] = (ints[starts[rows, 1, None] + offsets].to(torch.float64) / scale).to(torch.float32)
    return out
