"""Inline SVG plots: a small element builder (``Svg``), linear scales and ticks, and the
reliability diagram that the gate and calibration reports both draw."""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from html import escape as _escape_html
from typing import Any

from textgate.report.html import COLORS, escape, is_number

__all__ = ["CHAR_PX", "Scale", "Svg", "figure", "filled_bins", "nice_ticks", "reliability_svg"]

# Rough width of one 11px character, for sizing margins around labels (no text metrics in SVG).
CHAR_PX = 6.6


def _fmt_coord(value: float) -> str:
    return f"{value:.1f}".rstrip("0").rstrip(".")


@dataclass(frozen=True)
class Scale:
    """Linear map from data ``[lo, hi]`` to pixels ``[px_lo, px_hi]``."""

    lo: float
    hi: float
    px_lo: float
    px_hi: float

    def __call__(self, value: float) -> float:
        span = self.hi - self.lo or 1.0
        return self.px_lo + (value - self.lo) / span * (self.px_hi - self.px_lo)


def nice_ticks(lo: float, hi: float, target: int = 5) -> list[float]:
    if not hi > lo:
        return [lo]
    raw = (hi - lo) / target
    magnitude = 10 ** math.floor(math.log10(raw))
    step = next(m * magnitude for m in (1, 2, 2.5, 5, 10) if m * magnitude >= raw)
    first = math.ceil(lo / step - 1e-9) * step
    count = int(math.floor((hi - first) / step + 1e-9)) + 1
    return [round(first + i * step, 10) for i in range(count)]


class Svg:
    """Accumulates SVG elements for one figure; attribute values and text are escaped here."""

    def __init__(self, width: float, height: float, title: str) -> None:
        self.width, self.height, self.title = width, height, title
        self._parts: list[str] = []

    def element(self, tag: str, content: str = "", **attrs: Any) -> None:
        """Add ``<tag attrs>content</tag>``; ``content`` is raw SVG, ``font_size`` becomes ``font-size``."""
        rendered = "".join(
            f' {name.rstrip("_").replace("_", "-")}="'
            + (_fmt_coord(value) if isinstance(value, float) else _escape_html(str(value), quote=True)) + '"'
            for name, value in attrs.items() if value is not None
        )
        self._parts.append(f"<{tag}{rendered}>{content}</{tag}>" if content else f"<{tag}{rendered}/>")

    def line(self, x1: float, y1: float, x2: float, y2: float, **attrs: Any) -> None:
        self.element("line", x1=float(x1), y1=float(y1), x2=float(x2), y2=float(y2),
                     stroke=attrs.pop("stroke", COLORS["ink"]), **attrs)

    def rect(self, x: float, y: float, width: float, height: float, **attrs: Any) -> None:
        self.element("rect", x=float(x), y=float(y), width=float(max(width, 0.0)),
                     height=float(max(height, 0.0)), **attrs)

    def circle(self, x: float, y: float, r: float, **attrs: Any) -> None:
        self.element("circle", cx=float(x), cy=float(y), r=float(r), **attrs)

    def text(self, x: float, y: float, text: str, *, hover: str | None = None, **attrs: Any) -> None:
        """Escaped text; ``hover`` adds a tooltip (e.g. the full name behind a truncated label)."""
        content = _escape_html(text) + (f"<title>{_escape_html(hover)}</title>" if hover else "")
        self.element("text", content, x=float(x), y=float(y), fill=attrs.pop("fill", COLORS["ink"]),
                     font_size=attrs.pop("font_size", 12), **attrs)

    def polyline(self, points: Sequence[tuple[float, float]], **attrs: Any) -> None:
        self.element("polyline", points=" ".join(f"{_fmt_coord(x)},{_fmt_coord(y)}" for x, y in points),
                     fill="none", **attrs)

    def x_axis(self, scale: Scale, y: float, ticks: Sequence[float], fmt: Callable[[float], str],
               label: str, *, grid_to: float | None = None) -> None:
        self.line(scale.px_lo, y, scale.px_hi, y, stroke=COLORS["muted"])
        for tick in ticks:
            x = scale(tick)
            if grid_to is not None:
                self.line(x, grid_to, x, y, stroke=COLORS["grid"], stroke_width=0.6)
            self.line(x, y, x, y + 4, stroke=COLORS["muted"])
            self.text(x, y + 16, fmt(tick), text_anchor="middle", font_size=11, fill=COLORS["muted"])
        self.text((scale.px_lo + scale.px_hi) / 2, y + 32, label, text_anchor="middle")

    def y_axis(self, scale: Scale, x: float, ticks: Sequence[float], fmt: Callable[[float], str],
               label: str, *, grid_to: float | None = None) -> None:
        self.line(x, scale.px_lo, x, scale.px_hi, stroke=COLORS["muted"])
        for tick in ticks:
            y = scale(tick)
            if grid_to is not None:
                self.line(x, y, grid_to, y, stroke=COLORS["grid"], stroke_width=0.6)
            self.line(x - 4, y, x, y, stroke=COLORS["muted"])
            self.text(x - 7, y + 4, fmt(tick), text_anchor="end", font_size=11, fill=COLORS["muted"])
        middle = (scale.px_lo + scale.px_hi) / 2
        self.text(x - 40, middle, label, text_anchor="middle", transform=f"rotate(-90 {x - 40:.1f} {middle:.1f})")

    def render(self) -> str:
        return (f'<svg xmlns="http://www.w3.org/2000/svg" role="img" width="{self.width:.0f}" '
                f'height="{self.height:.0f}" viewBox="0 0 {self.width:.0f} {self.height:.0f}">'
                f"<title>{_escape_html(self.title)}</title>{''.join(self._parts)}</svg>")


def figure(svg: Svg, caption: str = "") -> str:
    return f"<figure>{svg.render()}" + (f"<figcaption>{escape(caption)}</figcaption>" if caption else "") + "</figure>"


def filled_bins(bins: Sequence[Any]) -> list[dict[str, Any]]:
    return [b for b in bins if isinstance(b, dict) and is_number(b.get("count")) and b["count"] > 0
            and is_number(b.get("accuracy")) and is_number(b.get("mean_confidence"))]


def reliability_svg(title: str, color: str, filled: Sequence[dict[str, Any]], ece_text: str) -> Svg:
    """Accuracy against confidence per non-empty bin (``filled_bins``), the diagonal dashed."""
    size, left, top = 260, 56, 34
    svg = Svg(left + size + 20, top + size + 48, f"Reliability diagram, {title}: {ece_text}")
    svg.text(left + size / 2, 18, f"{title} · {ece_text}", text_anchor="middle", font_weight=600)
    x, y = Scale(0, 1, left, left + size), Scale(0, 1, top + size, top)
    ticks = [0, 0.2, 0.4, 0.6, 0.8, 1.0]
    svg.x_axis(x, top + size, ticks, lambda t: f"{t:.1f}", "confidence", grid_to=top)
    svg.y_axis(y, left, ticks, lambda t: f"{t:.1f}", "accuracy", grid_to=left + size)
    svg.line(x(0), y(0), x(1), y(1), stroke=COLORS["muted"], stroke_dasharray="5 4")
    largest = max(b["count"] for b in filled)
    for b in filled:
        lower = b["lower"] if is_number(b.get("lower")) else 0.0
        upper = b["upper"] if is_number(b.get("upper")) else 1.0
        # Opacity shows how many examples a bin holds, so a one-example bin does not look decisive.
        svg.rect(x(lower) + 0.5, y(b["accuracy"]), x(upper) - x(lower) - 1, y(0) - y(b["accuracy"]),
                 fill=color, fill_opacity=round(0.2 + 0.5 * b["count"] / largest, 2))
    svg.polyline([(x(b["mean_confidence"]), y(b["accuracy"])) for b in filled], stroke=COLORS["ink"],
                 stroke_width=1.2)
    for b in filled:
        svg.circle(x(b["mean_confidence"]), y(b["accuracy"]), 3, fill=COLORS["ink"])
    return svg
