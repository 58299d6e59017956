"""Country names and the world map's shapes, both read from installed packages at run time.

Names come from Babel's CLDR data (`babel`, BSD-3-Clause): "DE" is "Germany". Shapes come
from the world map that `pygal_maps_world` ships (`worldmap.svg`, LGPL-3.0-or-later, one group
of paths per ISO 3166-1 alpha-2 code). Footfall neither copies nor redistributes that file: it
reads it from the installed package on first use, reduces each outline to integer points on
a smaller canvas (Douglas-Peucker, dropping islands too small to see), and keeps the result
in memory. The full file is about 780 KB; what a page embeds is about a tenth of that.
No network, no script: `charts.world_map` draws these paths as inline SVG.
"""

from __future__ import annotations

import math
import re
import xml.etree.ElementTree as ET
from functools import cache
from importlib import resources

from babel import Locale

SOURCE_PACKAGE = "pygal_maps_world"
SOURCE_FILE = "worldmap.svg"
SOURCE_WIDTH, SOURCE_HEIGHT = 2475.0, 1388.0  # the viewBox of worldmap.svg, in its own units
MAP_WIDTH = 1000  # map units: the width of the drawn map's viewBox
MAP_HEIGHT = 480  # map units: the source's height at this scale (561) less Antarctica, which is left out
LEFT_OUT = frozenset({"AQ"})  # a fifth of the height for a place no install reports from; the table still counts it
TOLERANCE = 0.5  # map units: a point this close to the simplified outline is dropped
MIN_RING_SPAN = 2.5  # map units: an island narrower and shorter than this is dropped (unless it is all there is)
DOT_SPAN = 2  # map units: a country smaller than this is drawn as a square this wide
SVG_NS = "{http://www.w3.org/2000/svg}"
CODE = re.compile(r"[a-z]{2}")
TOKEN = re.compile(r"[A-Za-z]|[-+]?(?:\d+\.?\d*|\.\d+)(?:[eE][-+]?\d+)?")
ARGUMENTS = {"m": 2, "l": 2, "t": 2, "h": 1, "v": 1, "c": 6, "s": 4, "q": 4}  # numbers per segment

Point = tuple[float, float]


@cache
def _territories() -> dict[str, str]:
    return dict(Locale.parse("en").territories)


def country_name(code: str) -> str:
    """The English name of an ISO 3166-1 alpha-2 code ("DE": "Germany"); the code itself when unknown."""
    upper = code.upper()
    if len(upper) != 2 or not upper.isalpha():
        return code
    return _territories().get(upper, code)


def country_label(code: str) -> str:
    """How the dashboard shows a country: "Germany (DE)"; "unknown" and unnamed codes as they are."""
    name = country_name(code)
    return code if name == code else f"{name} ({code.upper()})"


@cache
def country_shapes() -> dict[str, str]:
    """Each country's outline as compact SVG path data on a `MAP_WIDTH` x `MAP_HEIGHT` canvas, by upper-case code."""
    svg = resources.files(SOURCE_PACKAGE).joinpath(SOURCE_FILE).read_bytes()
    root = ET.fromstring(svg)
    scale = MAP_WIDTH / SOURCE_WIDTH
    shapes: dict[str, str] = {}
    for group in root.iter(f"{SVG_NS}g"):
        code = (group.get("class") or "").split(" ")[0]
        if "country" not in (group.get("class") or "") or not CODE.fullmatch(code) or code.upper() in LEFT_OUT:
            continue
        rings = [
            [(x * scale, y * scale) for x, y in ring]
            for path in group.iter(f"{SVG_NS}path")
            for ring in outline(path.get("d") or "")
        ]
        kept = [_reduce(ring) for ring in rings if _span(ring) >= MIN_RING_SPAN]
        if not kept and rings:  # a small country stays on the map as its largest piece
            kept = [_reduce(max(rings, key=_span))]
        data = "".join(path_data(ring) for ring in kept if len(ring) >= 2)
        if data:
            shapes[code.upper()] = data
    return shapes


def outline(data: str) -> list[list[Point]]:
    """The rings of an SVG path, curves replaced by their end points (enough once simplified)."""
    tokens = TOKEN.findall(data)
    rings: list[list[Point]] = []
    ring: list[Point] = []
    x = y = 0.0
    start = (0.0, 0.0)
    index = 0
    command = ""
    while index < len(tokens):
        if tokens[index].isalpha():
            command = tokens[index]
            index += 1
            if command in "zZ":
                if ring:
                    rings.append(ring)
                ring = []
                x, y = start
                continue
        lower = command.lower()
        if lower not in ARGUMENTS:
            raise ValueError(f"unsupported path command {command!r}")
        count = ARGUMENTS[lower]
        numbers = [float(t) for t in tokens[index : index + count]]
        if len(numbers) < count:
            raise ValueError("a path segment is cut short")
        index += count
        relative = command.islower()
        if lower == "h":
            x = x + numbers[0] if relative else numbers[0]
        elif lower == "v":
            y = y + numbers[0] if relative else numbers[0]
        else:
            dx, dy = numbers[-2], numbers[-1]
            x, y = (x + dx, y + dy) if relative else (dx, dy)
        if lower == "m":
            if ring:
                rings.append(ring)
            ring = [(x, y)]
            start = (x, y)
            command = "l" if relative else "L"  # further pairs after a move are lines
        else:
            ring.append((x, y))
    if ring:
        rings.append(ring)
    return rings


def simplify(points: list[Point], tolerance: float) -> list[Point]:
    """Douglas-Peucker: keep the points that lie farther than `tolerance` from the simpler line."""
    if len(points) < 3:
        return list(points)
    keep = [False] * len(points)
    keep[0] = keep[-1] = True
    stack = [(0, len(points) - 1)]
    while stack:
        first, last = stack.pop()
        farthest, distance = 0, 0.0
        for index in range(first + 1, last):
            d = _distance(points[index], points[first], points[last])
            if d > distance:
                farthest, distance = index, d
        if distance > tolerance:
            keep[farthest] = True
            stack += [(first, farthest), (farthest, last)]
    return [p for p, kept in zip(points, keep, strict=True) if kept]


def _reduce(ring: list[Point]) -> list[Point]:
    simpler = simplify(ring, TOLERANCE)
    return simpler if len(simpler) >= 4 else ring  # a small outline keeps its detail rather than collapse to a line


def _distance(point: Point, a: Point, b: Point) -> float:
    (px, py), (ax, ay), (bx, by) = point, a, b
    length = math.hypot(bx - ax, by - ay)
    if length == 0:
        return math.hypot(px - ax, py - ay)
    return abs((bx - ax) * (ay - py) - (ax - px) * (by - ay)) / length


def _span(ring: list[Point]) -> float:
    xs, ys = [p[0] for p in ring], [p[1] for p in ring]
    return max(max(xs) - min(xs), max(ys) - min(ys))


def _area(ring: list[tuple[int, int]]) -> float:
    """The shoelace formula: how much a ring covers, in square map units."""
    pairs = zip(ring, ring[1:] + ring[:1], strict=True)
    return abs(sum(x1 * y2 - x2 * y1 for (x1, y1), (x2, y2) in pairs)) / 2


def path_data(ring: list[Point]) -> str:
    """A closed ring as "M x y l dx dy ... z" in whole map units, the shortest form SVG reads."""
    rounded = [(round(x), round(y)) for x, y in ring]
    deduplicated = [p for i, p in enumerate(rounded) if i == 0 or p != rounded[i - 1]]
    if len(deduplicated) < 3 or _area(deduplicated) < DOT_SPAN:
        # A dot at this scale: a small square, so that it can be seen and hovered.
        x, y = deduplicated[0]
        return f"M{x - 1} {y - 1}h{DOT_SPAN}v{DOT_SPAN}h-{DOT_SPAN}z"
    steps = zip(deduplicated[1:], deduplicated, strict=False)
    numbers = [f"{x - before_x} {y - before_y}" for (x, y), (before_x, before_y) in steps]
    first = f"M{deduplicated[0][0]} {deduplicated[0][1]}"
    return (first + "l" + " ".join(numbers)).replace(" -", "-") + "z"
