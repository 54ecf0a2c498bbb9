"""Spherical geometry the domain code and the embedded backend share: MongoDB's earth.

The earth is a sphere of radius 6,378,100 m (MongoDB's `kRadiusOfEarthInMeters`), distances
are great-circle distances (the haversine formula, well conditioned at every distance), and a
point is a GeoJSON Point (`{type: "Point", coordinates: [lng, lat]}`) or a legacy coordinate
pair (`[lng, lat]`) within range. The lead queries use it to compute and check distances the
way a server's `2dsphere` index does; the embedded backend's `$nearSphere`/`$geoWithin`
(service/embedded/geo.py) are built on it.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from typing import Any

EARTH_RADIUS_M = 6_378_100.0
"""The radius of MongoDB's spherical earth, in metres."""


def great_circle_m(a: tuple[float, float], b: tuple[float, float]) -> float:
    """The great-circle distance in metres between two (longitude, latitude) points."""
    return great_circle_rad(a, b) * EARTH_RADIUS_M


def great_circle_rad(a: tuple[float, float], b: tuple[float, float]) -> float:
    """The central angle in radians between two (longitude, latitude) points (haversine)."""
    lng1, lat1 = map(math.radians, a)
    lng2, lat2 = map(math.radians, b)
    h = (
        math.sin((lat2 - lat1) / 2) ** 2
        + math.cos(lat1) * math.cos(lat2) * math.sin((lng2 - lng1) / 2) ** 2
    )
    return 2 * math.asin(math.sqrt(min(1.0, max(0.0, h))))


def finite_number(value: Any) -> bool:
    """Whether a value is a finite number (not a boolean)."""
    return isinstance(value, int | float) and not isinstance(value, bool) and math.isfinite(value)


def lng_lat(value: Any) -> tuple[float, float] | None:
    """A `[longitude, latitude]` pair within range, as floats; None otherwise."""
    if isinstance(value, list | tuple) and len(value) == 2 and all(finite_number(v) for v in value):
        lng, lat = float(value[0]), float(value[1])
        if -180 <= lng <= 180 and -90 <= lat <= 90:
            return lng, lat
    return None


def point_of(value: Any) -> tuple[float, float] | None:
    """The (longitude, latitude) of a stored GeoJSON Point or legacy pair; None otherwise."""
    if isinstance(value, Mapping):
        if value.get("type") != "Point":
            return None
        return lng_lat(value.get("coordinates"))
    return lng_lat(value)
