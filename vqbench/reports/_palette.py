"""Colours and markers that tell a dozen quantizers apart: a family shares a hue, its variants
differ in lightness and marker.

The family is read from the name (reports import no quantizer code): ``fsq``, ``residual-fsq``
and ``fsq-upstream`` are FSQ; ``vq``, ``vq-cosine``, ``simvq`` and ``residual-vq`` are VQ; ``lfq``,
``bsq`` and ``residual-lfq`` are lookup-free; ``latent-quantize`` has its own hue. Names of no
known family get the hues left over, one each.
"""

from __future__ import annotations

from dataclasses import dataclass

from vqbench.results.vocabulary import NO_QUANTIZER

# family -> a sequential matplotlib colormap (dark to light variants are drawn from it)
FAMILY_MAPS = {
    "fsq": "Blues",
    "vq": "Oranges",
    "lfq": "Greens",
    "latent": "Purples",
    "none": "Greys",
}
# name parts that mark a family, most specific first
_FAMILY_WORDS = (
    (NO_QUANTIZER, "none"),
    ("latent", "latent"),
    ("fsq", "fsq"),
    ("lfq", "lfq"),
    ("bsq", "lfq"),
    ("vq", "vq"),
)
_SPARE_MAPS = ("Reds", "RdPu", "YlOrBr", "BuGn", "PuBu", "Greys")
MARKERS = ("o", "s", "^", "D", "v", "P", "X", "<", ">", "h")


@dataclass(frozen=True)
class Style:
    """How one quantizer is drawn: an RGB colour and a marker."""

    color: tuple[float, float, float]
    marker: str


def family_of(name: str) -> str | None:
    """The family a quantizer's name belongs to, or None when no known word is in it."""
    lowered = str(name).lower()
    for word, family in _FAMILY_WORDS:
        if word in lowered:
            return family
    return None


def quantizer_styles(names: list[str] | tuple[str, ...] | set[str]) -> dict[str, Style]:
    """A distinct colour and marker per name; variants of one family get lighter shades of its hue."""
    from matplotlib import colormaps

    unique = sorted(dict.fromkeys(str(n) for n in names))
    families: dict[str, list[str]] = {}
    spare = iter(_SPARE_MAPS)
    own: dict[str, str] = {}
    for name in unique:
        family = family_of(name)
        if family is None:
            own[name] = next(spare, "Greys")
            family = f"own:{name}"
        families.setdefault(family, []).append(name)
    out: dict[str, Style] = {}
    for family, members in families.items():
        cmap = colormaps[own[members[0]] if family.startswith("own:") else FAMILY_MAPS[family]]
        # the plainest name (the family's own, e.g. "fsq") first and darkest
        members = sorted(members, key=lambda n: (n != family, len(n), n))
        n = len(members)
        for i, name in enumerate(members):
            shade = 0.9 if n == 1 else 0.95 - 0.5 * i / (n - 1)
            rgb = tuple(float(c) for c in cmap(shade)[:3])
            out[name] = Style(color=rgb, marker=MARKERS[i % len(MARKERS)])
    return out


__all__ = ["FAMILY_MAPS", "MARKERS", "Style", "family_of", "quantizer_styles"]
