"""Colour search: how much of each colour an image holds, as rank features.

An image's palette (its five most covered colours and their shares, fingerprint.palette) is
spread over BINS coarse RGB cells (4 levels a channel, 64 cells) and stored as the
`colour_bins` rank_features field: cell name -> share of the image. A colour query (one
to five colours with weights) becomes `rank_feature` clauses on the cells near each asked
colour (palette_query); an image's score sums, over the asked colours, the weight times how
fully the image holds that colour's asked share. Divided by the sum of weights
(palette_score) it reads as 0-100: how much of what was asked the image holds.
rank_feature scoring is a sum of stored numbers: the embedded stand-in and a real cluster
compute the same, with no script to run per document.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence

import numpy as np

LEVELS = 4  # per channel
STEP = 256 // LEVELS
NEAR = 48.0  # RGB distance at which a cell counts half as the asked colour itself
REACH = 2.2  # cells further than REACH x NEAR count for nothing


def _centres() -> np.ndarray:
    axis = np.arange(LEVELS) * STEP + STEP / 2
    r, g, b = np.meshgrid(axis, axis, axis, indexing="ij")
    return np.stack([r.ravel(), g.ravel(), b.ravel()], axis=1)


CENTRES = _centres()
BINS = len(CENTRES)


def cell_name(index: int) -> str:
    return f"c{index:02d}"


def hex_to_rgb(value: str) -> tuple[int, int, int]:
    text = value.lstrip("#")
    return int(text[0:2], 16), int(text[2:4], 16), int(text[4:6], 16)


def cell_of(rgb: Sequence[int]) -> int:
    r, g, b = (min(LEVELS - 1, int(c) // STEP) for c in rgb)
    return (r * LEVELS + g) * LEVELS + b


def image_bins(palette: Iterable[tuple[str, float]]) -> dict[str, float]:
    """The rank_features of an image: each palette colour's share added to its cell."""
    out: dict[str, float] = {}
    for hex_value, weight in palette:
        if weight <= 0:
            continue
        name = cell_name(cell_of(hex_to_rgb(hex_value)))
        out[name] = round(out.get(name, 0.0) + float(weight), 4)
    return out


def query_cells(rgb: Sequence[int]) -> list[tuple[str, float]]:
    """(cell, nearness 0-1) of the cells an asked colour reaches, nearest first; its own
    cell counts 1, so an image all in that cell holds all of the colour."""
    distance = np.linalg.norm(CENTRES - np.asarray(rgb, dtype=np.float64), axis=1)
    nearness = 0.5 ** (((distance - distance.min()) / NEAR) ** 2)
    order = np.argsort(distance, kind="stable")
    return [
        (cell_name(int(i)), round(float(nearness[i]), 4))
        for i in order
        if distance[i] <= REACH * NEAR
    ]


def palette_query(
    colours: Sequence[tuple[str, float]], field: str = "colour_bins"
) -> list[dict[str, object]]:
    """rank_feature clauses for colours given as (hex, weight 0-100): per asked colour and
    cell it reaches, `saturation` with the asked share as pivot, x / (x + pivot), boosted
    twice the weight: an image holding the asked share of the colour scores the weight, one
    holding more scores a little more, one holding less, less. So the proportions asked
    for count, and a picture that is all white does not outrank one with the asked white
    and blue."""
    clauses: list[dict[str, object]] = []
    for hex_value, weight in colours:
        pivot = max(weight, 1.0) / 100.0
        for cell, nearness in query_cells(hex_to_rgb(hex_value)):
            clauses.append(
                {
                    "rank_feature": {
                        "field": f"{field}.{cell}",
                        "saturation": {"pivot": pivot},
                        "boost": round(2.0 * weight * nearness, 4),
                    }
                }
            )
    return clauses


def palette_score(raw: float, colours: Sequence[tuple[str, float]]) -> float:
    """Elasticsearch's score of a palette query as 0-100: the share of the asked colours
    (by weight) that the image holds."""
    total = sum(weight for _, weight in colours)
    return round(min(100.0, 100.0 * raw / total), 1) if total > 0 else 0.0
