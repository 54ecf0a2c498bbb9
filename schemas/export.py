"""Export shapes: response schemas flattened into CSV columns, and NDJSON lines.

The CSV header is derived from the response schemas alone (never from the data), so it is the
same for every export of a resource: nested objects become dotted columns (`address.city`),
lists and free-form mappings are written as JSON text (`["hot","vip"]`), `null` as an empty
cell. Cells a spreadsheet would run as a formula (starting with `=`, `@`, a tab or a carriage
return, or `+`/`-` not followed by a number, as in a phone `+14155550100`) are prefixed with
`'` (OWASP's CSV-injection advice), so an exported file is safe to open.
"""

from __future__ import annotations

import csv
import io
import json
import re
from collections.abc import AsyncIterator, Sequence
from types import UnionType
from typing import Annotated, Any, Union, get_args, get_origin

from pydantic import BaseModel

CHUNK_ROWS = 200  # rows per chunk handed to the server (a few tens of kB)
_NUMBER_LIKE = re.compile(r"^[+-][\d\s().]+$")


def _model_of(annotation: Any) -> type[BaseModel] | None:
    if get_origin(annotation) is Annotated:
        return _model_of(get_args(annotation)[0])
    if get_origin(annotation) in (Union, UnionType):
        models = [m for a in get_args(annotation) if (m := _model_of(a)) is not None]
        return models[0] if len(models) == 1 else None
    if isinstance(annotation, type) and issubclass(annotation, BaseModel):
        return annotation
    return None


def flat_columns(models: Sequence[type[BaseModel]]) -> list[str]:
    """The dotted column names of the models' fields, in declaration order, each once."""
    columns: dict[str, None] = {}

    def walk(model: type[BaseModel], prefix: str) -> None:
        for name, info in model.model_fields.items():
            nested = _model_of(info.annotation)
            if nested is not None:
                walk(nested, f"{prefix}{name}.")
            else:
                columns[f"{prefix}{name}"] = None

    for model in models:
        walk(model, "")
    return list(columns)


def csv_cell(value: Any) -> str:
    """One JSON-mode value as a CSV cell (see the module docstring)."""
    if value is None:
        return ""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, list | dict):
        text = json.dumps(value, separators=(",", ":"), ensure_ascii=False)
    else:
        text = str(value)
    if text[:1] in ("=", "@", "\t", "\r") or (
        text[:1] in ("+", "-") and not _NUMBER_LIKE.match(text)
    ):
        return "'" + text
    return text


class CsvExport:
    """Response objects → CSV text, header first, with a fixed set of columns."""

    def __init__(self, models: Sequence[type[BaseModel]]) -> None:
        self.columns = flat_columns(models)
        self.nested = {c.rsplit(".", 1)[0] + "." for c in self.columns if "." in c}
        # Every prefix of a nested column ("listing_agent.", "a.b." and "a.").
        for prefix in list(self.nested):
            parts = prefix.rstrip(".").split(".")
            self.nested.update(".".join(parts[:i]) + "." for i in range(1, len(parts)))

    def row(self, item: BaseModel) -> list[str]:
        """One item's cells, in column order (fields the item lacks are empty)."""
        flat: dict[str, Any] = {}
        self._flatten(item.model_dump(mode="json"), "", flat)
        return [csv_cell(flat.get(column)) for column in self.columns]

    def _flatten(self, data: dict[str, Any], prefix: str, out: dict[str, Any]) -> None:
        for key, value in data.items():
            path = f"{prefix}{key}"
            if isinstance(value, dict) and f"{path}." in self.nested:
                self._flatten(value, f"{path}.", out)
            else:
                out[path] = value

    async def chunks(self, items: AsyncIterator[BaseModel]) -> AsyncIterator[str]:
        """The CSV document in chunks of `CHUNK_ROWS` rows (the header in the first)."""
        buffer = io.StringIO()
        writer = csv.writer(buffer, lineterminator="\r\n")
        writer.writerow(self.columns)
        count = 0
        async for item in items:
            writer.writerow(self.row(item))
            count += 1
            if count % CHUNK_ROWS == 0:
                yield _drain(buffer)
        yield _drain(buffer)


async def ndjson_chunks(items: AsyncIterator[BaseModel]) -> AsyncIterator[bytes]:
    """One JSON object a line (each item as the API shows it), in chunks of `CHUNK_ROWS`."""
    lines: list[bytes] = []
    async for item in items:
        lines.append(item.__pydantic_serializer__.to_json(item) + b"\n")
        if len(lines) == CHUNK_ROWS:
            yield b"".join(lines)
            lines = []
    yield b"".join(lines)


def _drain(buffer: io.StringIO) -> str:
    text = buffer.getvalue()
    buffer.seek(0)
    buffer.truncate()
    return text
