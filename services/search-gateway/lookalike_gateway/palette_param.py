"""The `palette` search parameter: one to five colours with weights, `1f4e79:60,e0b040:20`.

Weights are percentages (0-100) of how much of the image each colour should cover; a colour
without a weight asks for an equal share of 100. The ranking is colour_bins.palette_query.
"""

from __future__ import annotations

import re

MAX_COLOURS = 5
_HEX = re.compile(r"#?([0-9a-fA-F]{6})")


def parse_palette(value: object) -> object:
    """`hex[:weight],...` -> [(#rrggbb, weight)]; a list of such pairs passes as it is.
    Raises ValueError with a message people can act on."""
    if not isinstance(value, str):
        return value
    parts = [p.strip() for p in value.split(",") if p.strip()]
    if not parts:
        return []
    if len(parts) > MAX_COLOURS:
        raise ValueError(f"at most {MAX_COLOURS} colours, got {len(parts)}")
    colours: list[tuple[str, float | None]] = []
    for part in parts:
        hex_text, _, weight_text = part.partition(":")
        match = _HEX.fullmatch(hex_text.strip())
        if match is None:
            raise ValueError(f"{hex_text!r} is not a colour: give six hex digits, like 1f4e79")
        weight: float | None = None
        if weight_text.strip():
            try:
                weight = float(weight_text)
            except ValueError:
                raise ValueError(f"weight {weight_text!r} of {hex_text} is not a number") from None
            if not 0 < weight <= 100:
                raise ValueError(f"weight {weight_text} of {hex_text} is outside 0-100")
        colours.append((f"#{match.group(1).lower()}", weight))
    unweighted = [c for c, w in colours if w is None]
    share = 100.0 / len(colours)
    return [(c, w if w is not None else share) for c, w in colours] if unweighted else colours


def check_palette(value: list[tuple[str, float]]) -> list[tuple[str, float]]:
    if len(value) > MAX_COLOURS:
        raise ValueError(f"at most {MAX_COLOURS} colours, got {len(value)}")
    for hex_value, weight in value:
        if _HEX.fullmatch(hex_value) is None:
            raise ValueError(f"{hex_value!r} is not a colour: give six hex digits")
        if not 0 < weight <= 100:
            raise ValueError(f"weight {weight} of {hex_value} is outside 0-100")
    return [(h if h.startswith("#") else f"#{h}", w) for h, w in value]
