"""Stable colours per class: the same class gets the same colour in every sink, run and stream."""

from __future__ import annotations

import colorsys

# Golden-ratio hue steps spread consecutive class ids far apart on the colour wheel.
_GOLDEN = 0.618033988749895


def class_color(class_id: int) -> tuple[int, int, int]:
    """BGR colour (0-255) of a class id: saturated, bright enough for white or black text on it."""
    hue = (0.13 + int(class_id) * _GOLDEN) % 1.0
    # Alternate saturation/value a little so neighbouring hues stay distinguishable.
    sat = 0.85 if class_id % 2 == 0 else 0.65
    val = 0.95 if class_id % 3 else 0.80
    r, g, b = colorsys.hsv_to_rgb(hue, sat, val)
    return int(b * 255), int(g * 255), int(r * 255)


def text_color(background: tuple[int, int, int]) -> tuple[int, int, int]:
    """Black or white (BGR), whichever reads better on `background` (BGR), by relative luminance."""
    b, g, r = background
    luminance = 0.2126 * r + 0.7152 * g + 0.0722 * b
    return (0, 0, 0) if luminance > 140 else (255, 255, 255)
