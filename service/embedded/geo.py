"""Geospatial queries over points for the embedded backend: `$nearSphere` and `$geoWithin`.

mongomock has no geo operators; MongoDB's spherical ones are implemented here for POINTS,
exactly as a `2dsphere` index answers them:

- The earth is a sphere of radius 6,378,100 m (MongoDB's `kRadiusOfEarthInMeters`); distances
  are great-circle distances (the haversine formula): the maths is `service/geo.py`, which the
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

from service.geo import (
    EARTH_RADIUS_M,
    finite_number,
    great_circle_m,
    great_circle_rad,
    lng_lat,
    point_of,
)

NEAR = "$nearSphere"
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


__all__ = [
    "Near",
    "contains_near",
    "geo_within",
    "refuse_near",
    "require_index",
    "split_near",
]
