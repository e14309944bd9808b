# my_fsq.py
import math

import torch

from vqbench import register_quantizer
from vqbench.quantizers import Quantizer, QuantizerOutput


@register_quantizer("my-fsq", family="fsq")
class MyFSQ(Quantizer):
    """tanh-bounded rounding to an odd number of `levels` per channel."""

    def __init__(self, dim=None, codebook_size=None, levels=5):
        super().__init__()
        self.levels = levels
        self.dim = dim or max(1, round(math.log(codebook_size or 625, levels)))
        self.codebook_size = levels**self.dim  # per codebook; may differ from the size asked for
        self.register_buffer("radix", levels ** torch.arange(self.dim))

    def forward(self, x):
        self.check_input(x)
        half = (self.levels - 1) / 2
        z = torch.tanh(x) * half
        q = z + (z.round() - z).detach()  # straight-through rounding
        indices = ((q.detach().round() + half).long() * self.radix).sum(-1)
        return QuantizerOutput(q / half, indices, None)

    def indices_to_codes(self, indices):
        half = (self.levels - 1) / 2
        digits = (indices.unsqueeze(-1) // self.radix) % self.levels
        return (digits.float() - half) / half
