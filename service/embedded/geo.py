"""Geospatial queries over points for the embedded backend: `$nearSphere` and `$geoWithin`.

mongomock has no geo operators; MongoDB's spherical ones are implemented here for POINTS,
exactly as a `2dsphere` index answers them:

- The earth is a sphere of radius 6,378,100 m (MongoDB's `kRadiusOfEarthInMeters`); distances
  are great-circle distances (the haversine formula): the maths is `service/core/geo.py`, which the
  domain code uses too.
- `{field: {$nearSphere: {$geometry: {type: "Point", coordinates: [lng, lat]},
  $maxDistance: m, $minDistance: m}}}` (metres), or the legacy `{field: {$nearSphere:
  [lng, lat], $maxDistance: r, $minDistance: r}}` (radians): the documents whose point lies
  within `[min, max]` of the centre, nearest first. An explicit sort overrides that order, as
  on a server. It must be a top-level condition (or inside a top-level `$and`), at most one
  per query, with a `2dsphere` index on the field (else the server's errors: 291 without an
  index, BadValue elsewhere), and it is refused by `count_documents` and in an aggregation's
  `$match`, as MongoDB refuses it there.
- `{field: {$geoWithin: {$centerSphere: [[lng, lat], radians]}}}`: the documents whose point
  lies within that spherical cap (the boundary included). It is an ordinary filter.

A `2dsphere` index holds, for its geo field, the point's CELL: longitude and latitude are
each cut into 2^26 steps (about 0.6 m by 0.3 m at the equator) and the two step numbers are
interleaved bit by bit (a Z-order or Morton code), so that every coarser cell — a square of
the grid at a lower level — is one contiguous range of keys, as an S2 cell is in MongoDB's
index. A `$nearSphere` walks outward like MongoDB's GEO_NEAR_2DSPHERE stage (engine.py
`_matching_near`): each ring's cap is covered with a few cells (`cover`), the key ranges not
read before are read (`subtract`), and a document is fetched only once its cell's distance
(`cell_distance`, within `CELL_SLACK_M`) may lie inside the ring and the band; the walk stops
when `limit` results lie within the ring just completed (nothing outside it can come
before them). Its work grows with the page and the density around the centre, not with the
collection. A document without a valid point has a null key, which no ring reads.

Stored points are GeoJSON Points (`{type: "Point", coordinates: [lng, lat]}`) or legacy
coordinate pairs (`[lng, lat]`); a document without a valid point does not match. Other
geometries (polygons, lines) and `$near`/`$geoIntersects`/`$box`/`$polygon` stay unsupported
(NotImplementedError), like the rest of what mongomock lacks. Unlike a server, inserting a
malformed point into a `2dsphere`-indexed collection is not refused (the service validates
points itself).
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from pymongo.errors import OperationFailure

from service.core.geo import (
    EARTH_RADIUS_M,
    finite_number,
    great_circle_m,
    great_circle_rad,
    lng_lat,
    point_of,
)

NEAR = "$nearSphere"
CELL_BITS = 26
_STEPS = 1 << CELL_BITS
WHOLE = (0, (1 << (2 * CELL_BITS)) - 1)
# A cell's centre is within half its diagonal (< 0.34 m) of any point in it; 1 m covers that
# and the rounding of the distance formula.
CELL_SLACK_M = 1.0
# How many cells of a ring's cover span its bounding box along each axis (at most).
# (16: a cover's area is about twice its cap's; fewer cells cover more ground.)
_COVER_SPAN = 16
HALF_EARTH_M = math.pi * EARTH_RADIUS_M
_NEAR_OPTIONS = frozenset({"$maxDistance", "$minDistance"})


def _bad(message: str) -> OperationFailure:
    return OperationFailure(message, code=2, details={"codeName": "BadValue"})


# -- $geoWithin ---------------------------------------------------------------------------


def geo_within(doc_value: Any, shape: Any) -> bool:
    """mongomock operator: whether a stored point lies within a `$centerSphere` cap."""
    if not isinstance(shape, Mapping) or len(shape) != 1:
        raise _bad("$geoWithin needs exactly one shape")
    kind, arg = next(iter(shape.items()))
    if kind != "$centerSphere":
        raise NotImplementedError(f"$geoWithin {kind} is not supported by the embedded backend")
    pair = isinstance(arg, list | tuple) and len(arg) == 2
    if not (pair and finite_number(arg[1]) and arg[1] >= 0):
        raise _bad("$centerSphere takes [[longitude, latitude], radius in radians]")
    centre = lng_lat(arg[0])
    if centre is None:
        raise _bad("$centerSphere centre must be [longitude, latitude] in range")
    point = point_of(doc_value)
    return point is not None and great_circle_rad(centre, point) <= float(arg[1])


# -- $nearSphere --------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Near:
    """A `$nearSphere` condition: the field, the centre and the distance band in metres."""

    field: str
    centre: tuple[float, float]
    min_m: float = 0.0
    max_m: float = math.inf

    def distance(self, doc: Mapping[str, Any]) -> float | None:
        """The document's distance from the centre in metres, or None without a point."""
        value: Any = doc
        for part in self.field.split("."):
            if not isinstance(value, Mapping) or part not in value:
                return None
            value = value[part]
        point = point_of(value)
        return None if point is None else great_circle_m(self.centre, point)

    def admits(self, distance: float) -> bool:
        """Whether a distance lies within the band (both ends included)."""
        return self.min_m <= distance <= self.max_m


def _parse_near(field: str, condition: Mapping[str, Any]) -> Near:
    extra = set(condition) - {NEAR} - _NEAR_OPTIONS
    if extra:
        raise _bad(f"{NEAR} cannot be combined with {sorted(extra)[0]} on the same field")
    spec = condition[NEAR]
    options = {k: condition[k] for k in _NEAR_OPTIONS if k in condition}
    if isinstance(spec, Mapping) and "$geometry" in spec:
        geometry = spec["$geometry"]
        centre = point_of(geometry) if isinstance(geometry, Mapping) else None
        options.update({k: spec[k] for k in _NEAR_OPTIONS if k in spec})
        scale = 1.0  # metres
    else:
        centre = lng_lat(spec)
        scale = EARTH_RADIUS_M  # legacy pairs: radians
    if centre is None:
        raise _bad(f"{NEAR} needs a GeoJSON Point or [longitude, latitude] in range")
    for name, value in options.items():
        if not finite_number(value) or value < 0:
            raise _bad(f"{name} must be a non-negative number")
    return Near(
        field,
        centre,
        float(options.get("$minDistance", 0.0)) * scale,
        float(options.get("$maxDistance", math.inf)) * scale,
    )


def split_near(query: Mapping[str, Any]) -> tuple[Near | None, dict[str, Any]]:
    """Take the `$nearSphere` condition out of a filter: (the condition, the rest)."""
    found: list[Near] = []

    def strip(part: Mapping[str, Any]) -> dict[str, Any]:
        rest: dict[str, Any] = {}
        for key, value in part.items():
            if key == "$and" and isinstance(value, list):
                kept = [strip(p) if isinstance(p, Mapping) else p for p in value]
                kept = [p for p in kept if p != {}]
                if kept:
                    rest[key] = kept
            elif not key.startswith("$") and isinstance(value, Mapping) and NEAR in value:
                found.append(_parse_near(key, value))
            else:
                rest[key] = value
        return rest

    rest = strip(query)
    if len(found) > 1:
        raise _bad(f"Too many geoNear expressions: at most one {NEAR} per query")
    if contains_near(rest):
        raise _bad(f"{NEAR} is only allowed at the top level of a query (or in $and)")
    return (found[0] if found else None), rest


def contains_near(query: Any) -> bool:
    """Whether a filter holds a `$nearSphere` anywhere."""
    if isinstance(query, Mapping):
        return any(k == NEAR or contains_near(v) for k, v in query.items())
    if isinstance(query, list | tuple):
        return any(contains_near(v) for v in query)
    return False


def refuse_near(query: Any, context: str) -> None:
    """Raise MongoDB's error when `$nearSphere` appears where the server refuses it."""
    if contains_near(query):
        raise _bad(f"$geoNear, $near, and $nearSphere are not allowed in this context ({context})")


def require_index(indexes: Any, field: str) -> None:
    """MongoDB answers a `$nearSphere` only from a `2dsphere` index on its field (else 291)."""
    for index in indexes:
        if any(name == field and kind == "2dsphere" for name, kind in index.keys):
            return
    raise OperationFailure(
        f"error processing query: unable to find index for $geoNear query on {field}",
        code=291,
        details={"codeName": "NoQueryExecutionPlans"},
    )


# -- cells of a 2dsphere index -------------------------------------------------------------


def _spread(v: int) -> int:
    # The bits of v, one apart (bit i to bit 2i).
    v &= 0xFFFFFFFF
    v = (v | (v << 16)) & 0x0000FFFF0000FFFF
    v = (v | (v << 8)) & 0x00FF00FF00FF00FF
    v = (v | (v << 4)) & 0x0F0F0F0F0F0F0F0F
    v = (v | (v << 2)) & 0x3333333333333333
    return (v | (v << 1)) & 0x5555555555555555


def _compact(v: int) -> int:
    # `_spread` undone: the even bits of v.
    v &= 0x5555555555555555
    v = (v | (v >> 1)) & 0x3333333333333333
    v = (v | (v >> 2)) & 0x0F0F0F0F0F0F0F0F
    v = (v | (v >> 4)) & 0x00FF00FF00FF00FF
    v = (v | (v >> 8)) & 0x0000FFFF0000FFFF
    return (v | (v >> 16)) & 0x00000000FFFFFFFF


def _step_x(lng: float) -> int:
    return min(max(int((lng + 180.0) / 360.0 * _STEPS), 0), _STEPS - 1)


def _step_y(lat: float) -> int:
    return min(max(int((lat + 90.0) / 180.0 * _STEPS), 0), _STEPS - 1)


def cell_of(point: tuple[float, float]) -> int:
    """The finest cell holding a (longitude, latitude) point (its Z-order code)."""
    return _spread(_step_x(point[0])) | (_spread(_step_y(point[1])) << 1)


def cell_value(value: Any) -> int | None:
    """What a 2dsphere index keys a stored value by: its point's cell (None: no point)."""
    point = point_of(value)
    return None if point is None else cell_of(point)


def cell_distance(centre: tuple[float, float], cell: int) -> float:
    """The distance in metres from `centre` to a finest cell's centre (within CELL_SLACK_M
    of the distance to any point in that cell)."""
    x, y = _compact(cell), _compact(cell >> 1)
    lng = (x + 0.5) / _STEPS * 360.0 - 180.0
    lat = (y + 0.5) / _STEPS * 180.0 - 90.0
    return great_circle_m(centre, (lng, lat))


Ranges = list[tuple[int, int]]
"""Inclusive ranges of finest-cell codes, sorted and disjoint."""


def cover(centre: tuple[float, float], radius_m: float) -> Ranges:
    """Cell ranges holding every point within `radius_m` of `centre` (and a little more).

    The cap's latitude/longitude bounding box (the longitude span from `asin(sin d / cos
    lat)`, the whole circle when the cap holds a pole; split at the antimeridian) is covered
    by the cells of the finest level at which it spans at most `_COVER_SPAN` cells a side.
    """
    delta = radius_m / EARTH_RADIUS_M * (1 + 1e-9) + 1e-12
    if delta >= math.pi:
        return [WHOLE]
    lng, lat = centre
    span = math.degrees(delta)
    south, north = lat - span, lat + span
    boxes: list[tuple[float, float, float, float]] = []
    ratio = math.sin(delta) / max(math.cos(math.radians(lat)), 1e-300)
    if south <= -90.0 or north >= 90.0 or ratio >= 1.0:
        boxes.append((-180.0, 180.0, max(south, -90.0), min(north, 90.0)))
    else:
        width = math.degrees(math.asin(ratio)) + 1e-9
        west, east = lng - width, lng + width
        if west < -180.0:
            boxes += [(west + 360.0, 180.0, south, north), (-180.0, east, south, north)]
        elif east > 180.0:
            boxes += [(west, 180.0, south, north), (-180.0, east - 360.0, south, north)]
        else:
            boxes.append((west, east, south, north))
    ranges: Ranges = []
    for west, east, south, north in boxes:
        x0, x1, y0, y1 = _step_x(west), _step_x(east), _step_y(south), _step_y(north)
        shift = 0
        while (x1 >> shift) - (x0 >> shift) >= _COVER_SPAN or (
            (y1 >> shift) - (y0 >> shift) >= _COVER_SPAN
        ):
            shift += 1
        size = 1 << (2 * shift)
        for cx in range(x0 >> shift, (x1 >> shift) + 1):
            for cy in range(y0 >> shift, (y1 >> shift) + 1):
                low = (_spread(cx) | (_spread(cy) << 1)) << (2 * shift)
                ranges.append((low, low + size - 1))
    return _merged(ranges)


def _merged(ranges: Ranges) -> Ranges:
    out: Ranges = []
    for low, high in sorted(ranges):
        if out and low <= out[-1][1] + 1:
            out[-1] = (out[-1][0], max(out[-1][1], high))
        else:
            out.append((low, high))
    return out


def subtract(ranges: Ranges, done: Ranges) -> Ranges:
    """The parts of `ranges` outside `done` (both sorted and disjoint), in one sweep."""
    out: Ranges = []
    j = 0
    for low, high in ranges:
        while j < len(done) and done[j][1] < low:
            j += 1
        k = j
        while low <= high:
            if k >= len(done) or done[k][0] > high:
                out.append((low, high))
                break
            if done[k][0] > low:
                out.append((low, done[k][0] - 1))
            low = max(low, done[k][1] + 1)
            k += 1
    return out


def union(a: Ranges, b: Ranges) -> Ranges:
    """Two sets of ranges as one (sorted, disjoint)."""
    return _merged(a + b)


def geo_fields(keys: Any) -> frozenset[str]:
    """The `2dsphere` fields of an index's key pattern."""
    return frozenset(name for name, kind in keys if kind == "2dsphere")


__all__ = [
    "CELL_SLACK_M",
    "HALF_EARTH_M",
    "Near",
    "cell_distance",
    "cell_of",
    "cell_value",
    "contains_near",
    "cover",
    "geo_fields",
    "geo_within",
    "refuse_near",
    "require_index",
    "split_near",
    "subtract",
    "union",
]
