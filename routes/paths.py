"""The app's documented paths, indexed once per app from its routes.

Answers, without building the OpenAPI document: which documented resource a request path
names and which methods it has (for 405 and `Allow`), and each route's full template (for
metrics and access logs: routers are mounted under `/v1`, so a route alone knows only its
own part of the path).
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from dataclasses import dataclass

from fastapi.routing import APIRoute, iter_route_contexts
from starlette.routing import BaseRoute


@dataclass(frozen=True, slots=True)
class PathMethods:
    """The methods one documented path offers; `fixed` when the path has no parameters."""

    template: str
    fixed: bool
    methods: tuple[str, ...]
    regex: re.Pattern[str]


class RouteIndex:
    """Documented paths with their methods, and the full template of every API route."""

    def __init__(self, routes: Iterable[BaseRoute]) -> None:
        methods: dict[str, set[str]] = {}
        self._templates: dict[int, str] = {}
        for context in iter_route_contexts(list(routes)):
            route = context.original_route
            template = context.path_format
            if not isinstance(route, APIRoute) or template is None:
                continue
            self._templates[id(route)] = template
            if route.include_in_schema:
                methods.setdefault(template, set()).update(route.methods or ())
        entries = [
            PathMethods(
                template,
                "{" not in template,
                tuple(sorted(verbs)),
                re.compile(re.sub(r"\\\{[^/]+?\\\}", "[^/]+", re.escape(template))),
            )
            for template, verbs in methods.items()
        ]
        # A fixed path (`/v1/blogs/calendar`) outranks a template that also matches it.
        entries.sort(key=lambda entry: not entry.fixed)
        self._paths = entries

    def lookup(self, path: str) -> PathMethods | None:
        """The documented resource a request path names, with its methods."""
        return next((e for e in self._paths if e.regex.fullmatch(path)), None)

    def template(self, route: object) -> str | None:
        """The full path template of a matched route (`/v1/leads/{id}`), if it is an API route."""
        return self._templates.get(id(route))
