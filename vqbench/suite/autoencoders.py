"""The reconstruction engine's fixed autoencoders: a quantizer as the bottleneck of an MLP or a conv net.

Also the PNG strip of eval images and their reconstructions that the ``psnr`` figure carries.
"""

from __future__ import annotations

import base64
import math
import struct
import zlib
from typing import Any

import torch
from einops import rearrange
from torch import nn


class Bottlenecked(nn.Module):
    """Encoder -> quantizer (channel-last tokens) -> decoder; returns the output and the quantizer's.

    ``project_in`` / ``project_out`` sit between the encoder's tokens and the quantizer: identities
    at the quantizer's own width, a linear pair when a profile asks for one shared width. In eval
    mode the last quantizer input is kept as ``quantizer_input`` (for the diagnostics).
    """

    to_tokens: Any
    from_tokens: Any

    def __init__(self, encoder: nn.Module, quantizer: nn.Module, decoder: nn.Module, to_tokens, from_tokens):
        super().__init__()
        self.encoder, self.quantizer, self.decoder = encoder, quantizer, decoder
        self.to_tokens, self.from_tokens = to_tokens, from_tokens
        self.project_in: nn.Module = nn.Identity()
        self.project_out: nn.Module = nn.Identity()
        self.quantizer_input: torch.Tensor | None = None

    def forward(self, x: torch.Tensor):
        z = self.encoder(x)
        tokens, shape = self.to_tokens(z)
        tokens = self.project_in(tokens)
        if not self.training:
            self.quantizer_input = tokens.detach()
        out = self.quantizer(tokens)
        return self.decoder(self.from_tokens(self.project_out(out.codes), shape)), out


def mlp_autoencoder(
    dim: int, latent_dim: int, tokens: int, hidden: int, quantizer: nn.Module
) -> Bottlenecked:
    """MLP for vectors/audio frames: ``(B, dim)`` -> ``(B, tokens, latent_dim)`` -> ``(B, dim)``."""
    encoder = nn.Sequential(
        nn.Linear(dim, hidden),
        nn.GELU(),
        nn.Linear(hidden, hidden),
        nn.GELU(),
        nn.Linear(hidden, tokens * latent_dim),
    )
    decoder = nn.Sequential(
        nn.Linear(tokens * latent_dim, hidden),
        nn.GELU(),
        nn.Linear(hidden, hidden),
        nn.GELU(),
        nn.Linear(hidden, dim),
    )

    def to_tokens(z):
        return rearrange(z, "b (t d) -> b t d", t=tokens), None

    def from_tokens(codes, _):
        return rearrange(codes, "b t d -> b (t d)")

    return Bottlenecked(encoder, quantizer, decoder, to_tokens, from_tokens)


def conv_autoencoder(
    channels_in: int, latent_dim: int, down: int, width: int, quantizer: nn.Module
) -> Bottlenecked:
    """Conv net for images: ``(B, C, H, W)`` -> ``(B, H/down, W/down, latent_dim)`` tokens -> back.

    The encoder normalizes before each activation (GroupNorm, one group), as the VQGAN/MAGVIT-v2
    encoders do before their output conv: without it the untrained latents vary ~40x less across
    tokens than their offset, so every token starts in one code (LFQ never leaves it).
    """
    steps = int(math.log2(down))

    def norm() -> nn.Module:
        return nn.GroupNorm(1, width)

    enc: list[nn.Module] = [nn.Conv2d(channels_in, width, 3, padding=1), norm(), nn.GELU()]
    dec: list[nn.Module] = [nn.Conv2d(latent_dim, width, 3, padding=1), nn.GELU()]
    for _ in range(steps):
        enc += [nn.Conv2d(width, width, 4, stride=2, padding=1), norm(), nn.GELU()]
        dec += [nn.ConvTranspose2d(width, width, 4, stride=2, padding=1), nn.GELU()]
    enc += [nn.Conv2d(width, width, 3, padding=1), norm(), nn.GELU(), nn.Conv2d(width, latent_dim, 1)]
    dec += [nn.Conv2d(width, width, 3, padding=1), nn.GELU(), nn.Conv2d(width, channels_in, 3, padding=1)]

    def to_tokens(z):
        return rearrange(z, "b c h w -> b (h w) c"), z.shape

    def from_tokens(codes, shape):
        return rearrange(codes, "b (h w) c -> b c h w", h=shape[2], w=shape[3])

    return Bottlenecked(nn.Sequential(*enc), quantizer, nn.Sequential(*dec), to_tokens, from_tokens)


def auto_downsample(height: int, width: int) -> int:
    """The largest of 4, 2, 1 that leaves at least a 4 x 4 grid of tokens."""
    for down in (4, 2):
        if height // down >= 4 and width // down >= 4:
            return down
    return 1


def png_strip(originals: torch.Tensor, recons: torch.Tensor) -> str:
    """Base64 PNG: originals on the top row, reconstructions below; images ``(N, C, H, W)`` in [0, 1]."""
    grid = torch.cat([originals, recons.clamp(0, 1)], 0)
    grid = rearrange(grid, "(r n) c h w -> (r h) (n w) c", r=2)
    channels = grid.shape[-1]
    if channels not in (1, 3):
        grid, channels = grid[..., :1], 1
    pixels = (grid * 255).round().to(torch.uint8).numpy()
    height, width = pixels.shape[:2]
    raw = b"".join(b"\x00" + pixels[row].tobytes() for row in range(height))

    def chunk(tag: bytes, data: bytes) -> bytes:
        crc = zlib.crc32(tag + data) & 0xFFFFFFFF
        return struct.pack(">I", len(data)) + tag + data + struct.pack(">I", crc)

    color = 0 if channels == 1 else 2
    header = struct.pack(">IIBBBBB", width, height, 8, color, 0, 0, 0)
    body = chunk(b"IHDR", header) + chunk(b"IDAT", zlib.compress(raw, 9)) + chunk(b"IEND", b"")
    png = b"\x89PNG\r\n\x1a\n" + body
    return base64.b64encode(png).decode("ascii")


__all__ = ["Bottlenecked", "auto_downsample", "conv_autoencoder", "mlp_autoencoder", "png_strip"]
