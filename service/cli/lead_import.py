"""`import`: load leads from a CSV file through the bulk import (same validation and dedupe).

Each CSV record becomes one row of `POST /v1/leads/bulk`: its cells are mapped to lead fields
(`--map FIELD=Header`, or headers that name a field), converted to the JSON values the API
takes (numbers for numeric fields, `;`-separated tags), and handed in chunks to
`service.leads.commands.bulk_import`, which validates each row alone and skips duplicates in the
file and in the database. Rows that fail go to a report file with their row and line numbers.

Who imports: a user of the tenant (`--user`: id, username or email; default the tenant's
owner), who must be a member or higher. The journal records that user as the actor of every
created lead, and the leads are assigned to them, exactly as if they had called the endpoint.
"""

from __future__ import annotations

import csv
import json
import re
from collections.abc import Callable, Iterator, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import IO, Annotated, Any
from uuid import UUID

import typer
from pydantic import TypeAdapter
from rich.table import Table

from documents.lead import LeadType
from documents.tenant import Tenant
from documents.user import User
from schemas.leads import LeadCreate
from service.auth import find_login_user
from service.cli.base import (
    Steps,
    app,
    err,
    fail,
    out,
    progress,
    run_with_database,
    tenant_of,
)
from service.core.context import RequestContext, Role
from service.core.errors import Forbidden
from service.core.repository import Repository, uuid_filter
from service.leads.commands import BULK_CHUNK, bulk_import

# -- the lead fields a column can fill ----------------------------------------------------------


def _lead_fields() -> dict[str, str]:
    """Every field path a CSV column can fill (`address.city`), with its JSON type.

    Read from the API's own JSON schema of a lead, so a field added there is importable.
    `segments` (a map) is filled per key: `segments.KEY`.
    """
    schema = TypeAdapter(LeadCreate).json_schema()
    defs = schema.get("$defs", {})

    def resolve(node: dict[str, Any]) -> dict[str, Any]:
        while "$ref" in node:
            node = defs[node["$ref"].rsplit("/", 1)[1]]
        options = [resolve(o) for o in node.get("anyOf", []) if o.get("type") != "null"]
        return options[0] if len(options) == 1 else node

    fields: dict[str, str] = {}

    def walk(properties: dict[str, Any], prefix: str) -> None:
        for name, raw in properties.items():
            node = resolve(raw)
            if node.get("type") == "object" and "properties" in node:
                walk(node["properties"], f"{prefix}{name}.")
            else:
                fields[f"{prefix}{name}"] = (
                    "map" if node.get("type") == "object" else (node.get("type", "string"))
                )

    for variant in schema.get("oneOf", [schema]):
        walk(resolve(variant).get("properties", {}), "")
    return fields


FIELDS = _lead_fields()
FIELD_NAMES = ", ".join(f"{name}.KEY" if kind == "map" else name for name, kind in FIELDS.items())

# Common spellings of CSV headers (normalised: lower case, words joined by `_`).
ALIASES = {
    "e_mail": "email",
    "email_address": "email",
    "mail": "email",
    "first": "first_name",
    "firstname": "first_name",
    "given_name": "first_name",
    "forename": "first_name",
    "last": "last_name",
    "lastname": "last_name",
    "surname": "last_name",
    "family_name": "last_name",
    "phone_number": "phone",
    "mobile": "phone",
    "cell": "phone",
    "telephone": "phone",
    "tel": "phone",
    "address": "address.line1",
    "street": "address.line1",
    "street_address": "address.line1",
    "address1": "address.line1",
    "address_1": "address.line1",
    "address2": "address.line2",
    "address_2": "address.line2",
    "zip": "address.postal_code",
    "zip_code": "address.postal_code",
    "zipcode": "address.postal_code",
    "postcode": "address.postal_code",
    "mls": "mls_id",
    "mls_number": "mls_id",
    "mls_no": "mls_id",
    "price": "list_price",
    "listing_price": "list_price",
    "bedrooms": "beds",
    "bathrooms": "baths",
    "sqft": "square_feet",
    "square_footage": "square_feet",
    "agent": "listing_agent.name",
    "agent_name": "listing_agent.name",
    "agent_email": "listing_agent.email",
    "agent_phone": "listing_agent.phone",
    "company_name": "company",
    "organization": "company",
    "tag": "tags",
    "lead_type": "type",
    # Consent columns (issue 25): `opted_in`, `opted_out` or `unknown`.
    "call_consent": "consent.call.status",
    "text_consent": "consent.text.status",
    "sms_consent": "consent.text.status",
    "email_consent": "consent.email.status",
}

_WORDS = re.compile(r"[^0-9a-z]+")
_GROUPED_NUMBER = re.compile(r"^\$?\d{1,3}(,\d{3})+(\.\d+)?$")


def _normal(header: str) -> str:
    return _WORDS.sub("_", header.strip().lower()).strip("_")


def _field_for(header: str) -> str | None:
    """The field a header names on its own: its path, an address part (`City`) or an alias."""
    key = _normal(header)
    by_path = {_normal(name): name for name in FIELDS if FIELDS[name] != "map"}
    address = {_normal(n.partition(".")[2]): n for n in FIELDS if n.startswith("address.")}
    return by_path.get(key) or address.get(key) or ALIASES.get(key)


def _known_field(name: str) -> bool:
    prefix, _, key = name.partition(".")
    return name in FIELDS or (FIELDS.get(prefix) == "map" and bool(key))


def column_mapping(headers: Sequence[str], given: Sequence[str], *, auto: bool) -> dict[str, int]:
    """Lead field → column index: `--map FIELD=Header` entries, then headers naming a field."""
    index = {h: i for i, h in reversed(list(enumerate(headers)))}  # first column of a name wins
    mapping: dict[str, int] = {}
    for entry in given:
        name, sep, header = entry.partition("=")
        name, header = name.strip(), header.strip()
        if not sep or not name or not header:
            fail(f"--map takes FIELD=Header, not {entry!r}.")
        if not _known_field(name):
            fail(f"--map: unknown lead field {name!r}; fields: {FIELD_NAMES}.")
        if header not in index:
            fail(f"--map: no column {header!r} in the file; columns: {', '.join(headers)}.")
        mapping[name] = index[header]
    if auto:
        taken = set(mapping.values())
        for i, header in enumerate(headers):
            found = _field_for(header)
            if found is not None and found not in mapping and i not in taken:
                mapping[found] = i
                taken.add(i)
    return mapping


# -- cells to API values -----------------------------------------------------------------------


def _number(text: str) -> Any:
    if _GROUPED_NUMBER.match(text):  # "$350,000.00" as spreadsheets print prices
        text = text.lstrip("$").replace(",", "")
    try:
        return int(text)
    except ValueError:
        pass
    try:
        value = float(text)
    except ValueError:
        return text  # not a number: the row's validation reports it
    return int(value) if value.is_integer() and "." not in text else value


def convert(kind: str, text: str) -> Any:
    """A CSV cell as the JSON value the API takes for a field of JSON type `kind`."""
    if kind in ("integer", "number"):
        return _number(text)
    if kind == "boolean":
        lowered = text.lower()
        truth = {"true": True, "yes": True, "1": True, "false": False, "no": False, "0": False}
        return truth.get(lowered, text)
    if kind == "array":
        return [part.strip() for part in re.split(r"[;|]", text) if part.strip()]
    return text


def build_row(cells: Sequence[str], mapping: dict[str, int], default_type: str) -> dict[str, Any]:
    """One CSV record as a bulk-import row: empty cells are left out, dotted fields nested."""
    row: dict[str, Any] = {"type": default_type}
    for name, column in mapping.items():
        text = cells[column].strip() if column < len(cells) else ""
        if not text:
            continue
        *parents, key = name.split(".")
        kind = FIELDS.get(name, "string")
        value = text.lower() if name == "type" else convert(kind, text)
        target = row
        for parent in parents:  # `address.city`, `consent.text.status`
            target = target.setdefault(parent, {})
        target[key] = value
    return row


# -- reading the file --------------------------------------------------------------------------


@dataclass(frozen=True)
class Record:
    """One data record: its 1-based number among the records, its first line, its cells."""

    row: int
    line: int
    cells: list[str]


def _records(reader: Iterator[list[str]], line_of: Callable[[], int]) -> Iterator[Record]:
    number, line = 0, line_of()
    for cells in reader:
        start, line = line + 1, line_of()
        if not any(c.strip() for c in cells):
            continue  # blank lines are not records
        number += 1
        yield Record(number, start, cells)


def _open(path: Path, encoding: str) -> IO[str]:
    try:
        return path.open(newline="", encoding=encoding)
    except (OSError, LookupError) as exc:
        fail(f"cannot read {path}: {exc}")


def _scan(path: Path, encoding: str, delimiter: str) -> tuple[list[str], int]:
    """The header row and how many records follow; exits 2 on a file that cannot be read.

    The whole file is decoded and parsed once before anything is imported, so an encoding
    or CSV error stops the command before the first row is stored.
    """
    with _open(path, encoding) as f:
        reader = csv.reader(f, delimiter=delimiter)
        try:
            headers = next(reader, [])
            return headers, sum(1 for cells in reader if any(c.strip() for c in cells))
        except UnicodeDecodeError as exc:
            fail(
                f"{path} is not {encoding} ({exc.reason} near line {reader.line_num + 1}); "
                "pass --encoding."
            )
        except csv.Error as exc:
            fail(f"{path}, line {reader.line_num}: {exc}")


# -- the report of failed rows -----------------------------------------------------------------


class Report:
    """Failed rows: NDJSON (one object per row) or, for a `.csv` path, one line per error."""

    def __init__(self, path: Path, headers: Sequence[str], mapping: dict[str, int]) -> None:
        self.path, self.headers = path, list(headers)
        self.column_of = {name: headers[i] for name, i in mapping.items()}
        self.csv = path.suffix.lower() == ".csv"
        self.file = path.open("w", newline="", encoding="utf-8")
        self.writer = csv.writer(self.file) if self.csv else None
        if self.writer is not None:
            self.writer.writerow(["row", "line", "field", "column", "error"])
        self.rows = 0

    def _column(self, loc: Sequence[Any]) -> tuple[str, str]:
        # The error's field path, and the CSV column it came from when one was mapped.
        parts = [str(p) for p in loc if not isinstance(p, int) and p not in ("generic", "mls")]
        path = ".".join(parts)
        return path, self.column_of.get(path, "")

    def add(self, record: Record, errors: list[dict[str, Any]]) -> None:
        """Write one failed record with its errors."""
        self.rows += 1
        detailed = []
        for error in errors:
            path, column = self._column(error.get("loc", []))
            detailed.append({**error, "field": path, "column": column})
        if self.writer is not None:
            for e in detailed:
                self.writer.writerow([record.row, record.line, e["field"], e["column"], e["msg"]])
            return
        values = {h: c for h, c in zip(self.headers, record.cells, strict=False) if c}
        line = {"row": record.row, "line": record.line, "errors": detailed, "values": values}
        self.file.write(json.dumps(line, ensure_ascii=False) + "\n")

    def close(self) -> None:
        """Flush and close the file."""
        self.file.close()


# -- the import --------------------------------------------------------------------------------


@dataclass
class ImportSummary:
    """What an import did."""

    rows: int = 0
    created: int = 0
    duplicates: int = 0
    failed: int = 0
    report: str | None = None
    ignored_columns: list[str] = field(default_factory=list)


async def actor_context(tenant_id: UUID, user: str | None) -> RequestContext:
    """The context of the user who imports: `user` (id, username or email) or the owner."""
    system = RequestContext(tenant_id=tenant_id, actor_id=UUID(int=0), role=Role.owner)
    tenant = await Repository(Tenant, system).find_one({"_id": uuid_filter(tenant_id)})
    if tenant is None:
        fail(f"no tenant {tenant_id}.")
    found: User | None
    try:
        user_id = UUID(user) if user else tenant.owner_id
    except ValueError:
        user_id = None
    if user_id is not None:
        found = await Repository(User, system).find_one({"_id": uuid_filter(user_id)})
    elif user:
        found = await find_login_user(user)
    else:
        fail(f"tenant {tenant_id} has no owner on record: name the importing user with --user.")
    if found is None or found.tenant_id != tenant_id or not found.is_active:
        fail(f"no active user {user or user_id} in tenant {tenant_id}.")
    return RequestContext(
        tenant_id=tenant_id,
        actor_id=found.id,
        role=Role(found.role),
        phone_region=tenant.default_phone_region,
    )


async def import_records(
    *,
    ctx: RequestContext,
    records: Iterator[Record],
    mapping: dict[str, int],
    default_type: str,
    chunk: int,
    report: Report,
    steps: Steps,
) -> ImportSummary:
    """Hand the records to the bulk import `chunk` at a time; failed rows go to `report`."""
    summary = ImportSummary()
    batch: list[Record] = []

    async def flush() -> None:
        rows = [build_row(r.cells, mapping, default_type) for r in batch]
        outcome = await bulk_import(ctx=ctx, rows=rows)
        summary.created += outcome.created
        summary.duplicates += outcome.duplicates
        summary.failed += len(outcome.failed)
        for failure in outcome.failed:
            report.add(batch[failure["index"]], failure["errors"])
        steps.advance(len(batch))
        batch.clear()

    for record in records:
        summary.rows += 1
        batch.append(record)
        if len(batch) == chunk:
            await flush()
    if batch:
        await flush()
    return summary


def _print_summary(summary: ImportSummary, as_json: bool) -> None:
    if as_json:
        out().out(json.dumps(asdict(summary)))
        return
    table = Table(title="lead import", show_header=True)
    for name in ("rows", "created", "duplicates", "failed"):
        table.add_column(name, justify="right")
    table.add_row(*(str(getattr(summary, n)) for n in ("rows", "created", "duplicates", "failed")))
    console = out()
    console.print(table)
    if summary.failed:
        console.out(f"failed rows and their errors: {summary.report}")


@app.command(
    "import",
    short_help="Import leads from a CSV file (the bulk import's validation and dedupe).",
    help="Import leads from a CSV file (the bulk import's validation and dedupe). "
    f"Lead fields for --map: {FIELD_NAMES}.",
    epilog="Exit status: 0 all rows created or duplicates; 1 some rows failed (see the "
    "report); 2 nothing imported (bad arguments, unknown tenant or user, database busy).",
)
def import_leads(
    csv_file: Annotated[
        Path,
        typer.Argument(
            exists=True, dir_okay=False, readable=True, help="The CSV file (header row first)."
        ),
    ],
    tenant: Annotated[
        str,
        typer.Option(
            metavar="ID|EMAIL",
            help="The tenant that receives the leads: its id, or its owner's e-mail.",
        ),
    ],
    user: Annotated[
        str | None,
        typer.Option(
            help="Who imports (id, username or email; member or higher): the journal's actor "
            "and the leads' agent. Default: the tenant's owner.",
            show_default=False,
        ),
    ] = None,
    maps: Annotated[
        list[str] | None,
        typer.Option(
            "--map",
            metavar="FIELD=Header",
            help="Fill a lead field from a column, e.g. --map email=E-mail --map "
            "address.city=Town (repeatable).",
        ),
    ] = None,
    auto_map: Annotated[
        bool,
        typer.Option(help="Also map headers that name a field (Email, First Name, Zip, ...)."),
    ] = True,
    lead_type: Annotated[
        LeadType, typer.Option("--type", help="Lead type of rows without a `type` column.")
    ] = LeadType.generic,
    report: Annotated[
        Path | None,
        typer.Option(
            help="Where failed rows go: .csv (one line per error) or NDJSON. "
            "Default: FILE.errors.ndjson.",
            show_default=False,
            dir_okay=False,
        ),
    ] = None,
    delimiter: Annotated[str, typer.Option(help="Field delimiter.")] = ",",
    encoding: Annotated[str, typer.Option(help="File encoding.")] = "utf-8-sig",
    chunk: Annotated[
        int, typer.Option(min=1, max=BULK_CHUNK, help="Rows per bulk-import call.")
    ] = 1000,
    as_json: Annotated[bool, typer.Option("--json", help="Print the summary as JSON.")] = False,
) -> None:
    """Import leads from a CSV file."""
    if len(delimiter) != 1:
        fail("--delimiter takes one character.")
    headers, total = _scan(csv_file, encoding, delimiter)
    if not any(h.strip() for h in headers):
        fail(f"{csv_file} has no header row.")
    mapping = column_mapping(headers, maps or [], auto=auto_map)
    if not set(mapping) - {"type"}:
        fail(f"no column maps to a lead field; use --map FIELD=Header. Fields: {FIELD_NAMES}.")
    ignored = [h for i, h in enumerate(headers) if i not in mapping.values() and h.strip()]
    notes = err()
    notes.print("columns: " + ", ".join(f"{headers[i]} → {name}" for name, i in mapping.items()))
    if ignored:
        notes.print(f"[yellow]ignored columns:[/] {', '.join(ignored)}")
    report_path = report or csv_file.with_name(csv_file.name + ".errors.ndjson")

    async def work() -> ImportSummary:
        ctx = await actor_context(await tenant_of(tenant), user)
        with _open(csv_file, encoding) as f:
            reader = csv.reader(f, delimiter=delimiter)
            next(reader, None)
            try:
                failures = Report(report_path, headers, mapping)
            except OSError as exc:
                fail(f"cannot write the report {report_path}: {exc}")
            try:
                with progress("import", total, "rows") as steps:
                    return await import_records(
                        ctx=ctx,
                        records=_records(reader, lambda: reader.line_num),
                        mapping=mapping,
                        default_type=lead_type.value,
                        chunk=chunk,
                        report=failures,
                        steps=steps,
                    )
            except Forbidden as exc:
                fail(f"the importing user cannot create leads: {exc.detail}")
            except csv.Error as exc:
                fail(f"{csv_file}, line {reader.line_num}: {exc}")
            finally:
                failures.close()

    summary = run_with_database(work)
    summary.report = str(report_path)
    summary.ignored_columns = ignored
    _print_summary(summary, as_json)
    if summary.failed:
        raise typer.Exit(1)


__all__ = [
    "ALIASES",
    "FIELDS",
    "ImportSummary",
    "Record",
    "Report",
    "actor_context",
    "build_row",
    "column_mapping",
    "convert",
    "import_leads",
    "import_records",
]
