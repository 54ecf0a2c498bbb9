"""Counted work on the embedded backend, as MongoDB's `explain("executionStats")` counts it.

Per operation the engine counts index keys examined (`totalKeysExamined`), documents
examined (`totalDocsExamined`: fetched or decoded to be checked), documents returned
(`nReturned`) and whether it sorted in memory (a blocking `SORT` stage, with its row count).
A count answered from index bounds alone (the planner's `exact` plan) examines keys only, as
MongoDB's `COUNT_SCAN` does. Work of nested reads (each `$lookup` probe, a `$nearSphere`
candidate read) belongs to the operation that caused it.

A caller measures with `with measuring() as work: ...`: the counter lives in a context
variable, which the backend's worker thread sees (aio.run copies the context), so the work of
one request, test or benchmark step is separated from the work of any other. Nothing is
counted (and nothing costs more than one context-variable read) when no one measures.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from contextvars import ContextVar
from dataclasses import dataclass, field


@dataclass
class OpWork:
    """One operation's counters (an `executionStats` in miniature)."""

    collection: str
    method: str
    keys_examined: int = 0
    docs_examined: int = 0
    returned: int = 0
    sorted_in_memory: int = 0  # rows a blocking sort held (0: no in-memory sort)

    @property
    def examined(self) -> int:
        """Keys plus documents examined."""
        return self.keys_examined + self.docs_examined


@dataclass
class Work:
    """The work of everything run while measuring: totals and each operation's share."""

    operations: list[OpWork] = field(default_factory=list)
    # An enclosing measurement (a benchmark around a request the suite also measures): it
    # sees every operation too.
    parent: Work | None = None
    # The operation being run (nested reads add to it) and how deep the nesting is.
    _open: OpWork | None = None
    _depth: int = 0

    def _total(self, name: str) -> int:
        return sum(getattr(op, name) for op in self.operations)

    @property
    def keys_examined(self) -> int:
        """Index keys examined by every operation."""
        return self._total("keys_examined")

    @property
    def docs_examined(self) -> int:
        """Documents examined by every operation."""
        return self._total("docs_examined")

    @property
    def examined(self) -> int:
        """Keys plus documents examined by every operation."""
        return self.keys_examined + self.docs_examined

    @property
    def returned(self) -> int:
        """Documents the operations returned to the caller."""
        return self._total("returned")

    @property
    def sorted_in_memory(self) -> int:
        """Rows held by in-memory sorts."""
        return self._total("sorted_in_memory")

    def summary(self) -> dict[str, int]:
        """The totals as a plain mapping (for reports and benchmarks)."""
        return {
            "operations": len(self.operations),
            "keys_examined": self.keys_examined,
            "docs_examined": self.docs_examined,
            "returned": self.returned,
            "sorted_in_memory": self.sorted_in_memory,
        }

    def worst(self) -> OpWork | None:
        """The operation that examined the most."""
        return max(self.operations, key=lambda op: op.examined, default=None)


_current: ContextVar[Work | None] = ContextVar("embedded_work", default=None)


@contextmanager
def measuring() -> Iterator[Work]:
    """Count the backend's work done from inside this block (this task and its children)."""
    work = Work(parent=_current.get())
    token = _current.set(work)
    try:
        yield work
    finally:
        _current.reset(token)


def current() -> Work | None:
    """The counter of whoever is measuring, or None."""
    return _current.get()


class operation:  # (lower case: used as `with work.operation(...)`, as before)
    """Attribute what runs inside to one operation (nested operations join the outer one).

    A class rather than a generator-based context manager: it is entered on every engine
    call, and with no one measuring it only reads the context variable once.
    """

    __slots__ = ("_method", "_name", "_nested", "_work")

    def __init__(self, collection: str, method: str) -> None:
        self._name = collection
        self._method = method

    def __enter__(self) -> OpWork | None:
        work = self._work = _current.get()
        if work is None:
            return None
        self._nested = work._open is not None
        if self._nested:
            work._depth += 1
            return work._open
        op = OpWork(self._name, self._method)
        outer: Work | None = work
        while outer is not None:
            outer.operations.append(op)
            outer = outer.parent
        work._open = op
        return op

    def __exit__(self, *_: object) -> None:
        work = self._work
        if work is None:
            return
        if self._nested:
            work._depth -= 1
        else:
            work._open = None


def _open() -> OpWork | None:
    work = _current.get()
    return None if work is None else work._open


def counting() -> bool:
    """Whether the open operation is a count (its index-decided matches are not fetched)."""
    op = _open()
    return op is not None and op.method == "count"


def keys(n: int = 1) -> None:
    """Index keys were examined."""
    op = _open()
    if op is not None:
        op.keys_examined += n


def docs(n: int = 1) -> None:
    """Documents were examined (fetched to be checked or returned)."""
    op = _open()
    if op is not None:
        op.docs_examined += n


def returned(n: int) -> None:
    """The operation returned `n` documents (nested reads return to their operation: ignored)."""
    work = _current.get()
    if work is not None and work._open is not None and work._depth == 0:
        work._open.returned += n


def sorted_in_memory(rows: int) -> None:
    """A blocking sort held `rows` rows."""
    op = _open()
    if op is not None:
        op.sorted_in_memory += rows


__all__ = [
    "OpWork",
    "Work",
    "counting",
    "current",
    "docs",
    "keys",
    "measuring",
    "operation",
    "returned",
    "sorted_in_memory",
]
