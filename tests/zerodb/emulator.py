"""A small emulator of ZeroDB's documented REST API, for tests, served on 127.0.0.1.

Built from the documented shapes only (no live service was consulted):

* tables: ``POST {prefix}/projects/{project_id}/database/tables`` (400 when
  the table exists);
* rows: ``POST .../tables/{table}/rows`` with ``{"row_data": {...}}``;
  ``GET`` / ``PUT`` / ``DELETE .../rows/{row_id}``; a row is
  ``{row_id, project_id, table_name, row_data, created_at, updated_at}``;
* query: ``POST .../tables/{table}/query`` with ``{"filters", "limit" (<= 1000),
  "skip"}``, operators ``$eq $ne $gt $gte $lt $lte $in``, answered as
  ``{total, skip, limit, has_more, data}`` in insertion order;
* vectors: ``POST .../vectors/upsert`` and ``.../vectors/search`` (cosine
  similarity), per ``namespace``;
* errors ``{"detail": ...}``: 401 (bad key or token), 404 (unknown table or
  row), 422 (a body with unknown or missing fields), 429 (scripted).

Request bodies are strict (unknown keys get 422), so a wire name the client
gets wrong fails loudly. ``ignore_filters`` plays a service that ignores
the ``filters`` key (as one named ``filter`` would). Faults are scripted on the :class:`ZeroDBEmulator`
object, which also holds the data: a server restarted on the same object
(see :class:`EmulatorServer`) keeps it.
"""

from __future__ import annotations

import math
import threading
import time
import uuid
from collections import Counter
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from fastapi import APIRouter, FastAPI, HTTPException, Request
from pydantic import BaseModel, ConfigDict, Field

from tests._servers import UvicornThread

OPERATORS = ("$eq", "$ne", "$gt", "$gte", "$lt", "$lte", "$in")


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", populate_by_name=True)


class TableBody(_Strict):
    """Create-table body."""

    table_name: str = Field(min_length=1)
    description: str | None = None
    table_schema: dict[str, Any] | None = Field(default=None, alias="schema")


class RowBody(_Strict):
    """Insert / update body."""

    row_data: dict[str, Any]


class QueryBody(_Strict):
    """Query body."""

    filters: dict[str, Any] = Field(default_factory=dict)
    limit: int = Field(default=100, ge=1, le=1000)
    skip: int = Field(default=0, ge=0)


class VectorBody(_Strict):
    """Vector upsert body."""

    vector_embedding: list[float] = Field(min_length=1)
    vector_id: str | None = None
    document: str | None = None
    metadata: dict[str, Any] | None = None
    namespace: str = "default"
    source: str | None = None


class SearchBody(_Strict):
    """Vector search body."""

    query_vector: list[float] = Field(min_length=1)
    top_k: int = Field(default=10, ge=1)
    namespace: str | None = None
    similarity_threshold: float = 0.0


@dataclass
class Fault:
    """Replies scripted for the next ``count`` requests of ``route`` (None: any route)."""

    status: int
    count: int
    route: str | None = None
    retry_after: str | None = None
    detail: str = "scripted fault"


@dataclass
class ZeroDBEmulator:
    """The emulated service's data, keys and scripted faults (thread-safe)."""

    api_keys: set[str] = field(default_factory=lambda: {"test-key"})
    jwts: set[str] = field(default_factory=set)
    prefix: str = "/v1"
    insert_delay_s: float = 0.0
    ignore_filters: bool = False
    tables: dict[tuple[str, str], dict[str, dict[str, Any]]] = field(default_factory=dict)
    vectors: dict[tuple[str, str], dict[str, dict[str, Any]]] = field(default_factory=dict)
    faults: list[Fault] = field(default_factory=list)
    slow_inserts: int = 0
    slow_s: float = 0.0
    calls: Counter[str] = field(default_factory=Counter)
    faulted: Counter[str] = field(default_factory=Counter)
    max_in_flight: int = 0
    _in_flight: int = 0
    lock: threading.Lock = field(default_factory=threading.Lock)

    # ------------------------------------------------------------------ scripting (from tests)

    def fail_next(self, count: int, status: int, route: str | None = None, retry_after: str | None = None,
                  detail: str = "scripted fault") -> None:  # fmt: skip
        """Answer the next ``count`` requests of ``route`` with ``status`` instead of serving them."""
        with self.lock:
            self.faults.append(Fault(status, count, route, retry_after, detail))

    def slow_next_inserts(self, count: int, seconds: float) -> None:
        """The next ``count`` inserts are stored, then answered only after ``seconds``."""
        with self.lock:
            self.slow_inserts, self.slow_s = count, seconds

    def rows(self, project_id: str, table: str) -> list[dict[str, Any]]:
        """Every stored row of a table, in insertion order."""
        with self.lock:
            return list(self.tables.get((project_id, table), {}).values())

    # ------------------------------------------------------------------ the app

    def app(self) -> FastAPI:
        """A FastAPI app serving this emulator's state under ``prefix``."""
        app = FastAPI(title="ZeroDB emulator")
        router = APIRouter(prefix=self.prefix + "/projects/{project_id}/database")
        em = self

        @router.post("/tables", status_code=201)
        def create_table(project_id: str, body: TableBody, request: Request) -> dict[str, Any]:
            em._gate("create_table", request)
            with em.lock:
                if (project_id, body.table_name) in em.tables:
                    raise HTTPException(400, f"Table '{body.table_name}' already exists")
                em.tables[(project_id, body.table_name)] = {}
            return {"table_id": str(uuid.uuid4()), "table_name": body.table_name, "row_count": 0,
                    "created_at": _now()}  # fmt: skip

        @router.post("/tables/{table}/rows", status_code=201)
        def insert_row(project_id: str, table: str, body: RowBody, request: Request) -> dict[str, Any]:
            em._gate("insert_row", request)
            with em.lock:
                em._in_flight += 1
                em.max_in_flight = max(em.max_in_flight, em._in_flight)
            try:
                if em.insert_delay_s:
                    time.sleep(em.insert_delay_s)
                with em.lock:
                    rows = em._table(project_id, table)
                    now = _now()
                    row: dict[str, Any] = {"row_id": str(uuid.uuid4()), "project_id": project_id, "table_name": table,
                                           "row_data": body.row_data, "created_at": now, "updated_at": now}  # fmt: skip
                    rows[row["row_id"]] = row
                    slow = em.slow_inserts > 0
                    if slow:
                        em.slow_inserts -= 1
                if slow:
                    time.sleep(em.slow_s)  # stored, but the reply comes too late for the client
                return row
            finally:
                with em.lock:
                    em._in_flight -= 1

        @router.get("/tables/{table}/rows")
        def list_rows(project_id: str, table: str, request: Request, skip: int = 0, limit: int = 100) -> list[Any]:
            em._gate("list_rows", request)
            with em.lock:
                return list(em._table(project_id, table).values())[skip : skip + min(limit, 1000)]

        @router.get("/tables/{table}/rows/{row_id}")
        def get_row(project_id: str, table: str, row_id: str, request: Request) -> dict[str, Any]:
            em._gate("get_row", request)
            with em.lock:
                return em._row(project_id, table, row_id)

        @router.put("/tables/{table}/rows/{row_id}")
        def put_row(project_id: str, table: str, row_id: str, body: RowBody, request: Request) -> dict[str, Any]:
            em._gate("put_row", request)
            with em.lock:
                row = em._row(project_id, table, row_id)
                row["row_data"], row["updated_at"] = body.row_data, _now()
                return row

        @router.delete("/tables/{table}/rows/{row_id}")
        def delete_row(project_id: str, table: str, row_id: str, request: Request) -> dict[str, Any]:
            em._gate("delete_row", request)
            with em.lock:
                em._row(project_id, table, row_id)
                del em.tables[(project_id, table)][row_id]
            return {"message": f"Row {row_id} deleted successfully"}

        @router.post("/tables/{table}/query")
        def query(project_id: str, table: str, body: QueryBody, request: Request) -> dict[str, Any]:
            em._gate("query", request)
            with em.lock:
                rows = list(em._table(project_id, table).values())
            filters = {} if em.ignore_filters else body.filters
            matched = [r for r in rows if _matches(r["row_data"], filters)]
            page = matched[body.skip : body.skip + body.limit]
            return {"total": len(matched), "skip": body.skip, "limit": body.limit,
                    "has_more": body.skip + len(page) < len(matched), "data": page}  # fmt: skip

        @router.post("/vectors/upsert")
        def upsert(project_id: str, body: VectorBody, request: Request) -> dict[str, Any]:
            em._gate("upsert_vector", request)
            vector_id = body.vector_id or str(uuid.uuid4())
            record = {"vector_id": vector_id, "project_id": project_id, "namespace": body.namespace,
                      "vector_embedding": body.vector_embedding, "vector_metadata": body.metadata,
                      "document": body.document, "source": body.source, "created_at": _now()}  # fmt: skip
            with em.lock:
                em.vectors.setdefault((project_id, body.namespace), {})[vector_id] = record
            return record

        @router.post("/vectors/search")
        def search(project_id: str, body: SearchBody, request: Request) -> dict[str, Any]:
            em._gate("search_vectors", request)
            with em.lock:
                spaces = [v for (p, ns), v in em.vectors.items()
                          if p == project_id and (body.namespace is None or ns == body.namespace)]  # fmt: skip
                candidates = [dict(r) for space in spaces for r in space.values()]
            for record in candidates:
                record["similarity"] = _cosine(body.query_vector, record["vector_embedding"])
            hits = sorted((r for r in candidates if r["similarity"] >= body.similarity_threshold),
                          key=lambda r: -r["similarity"])[: body.top_k]  # fmt: skip
            return {"vectors": hits, "total_count": len(hits), "search_time_ms": 0.1}

        app.include_router(router)
        return app

    # ------------------------------------------------------------------ helpers (lock held where noted)

    def _gate(self, route: str, request: Request) -> None:
        """Check the credentials, then play a scripted fault if one is due."""
        key = request.headers.get("x-api-key")
        auth = request.headers.get("authorization", "")
        token = auth[len("Bearer "):] if auth.startswith("Bearer ") else None
        if key not in self.api_keys and token not in self.jwts:
            raise HTTPException(401, "Invalid API key")
        with self.lock:
            self.calls[route] += 1
            for fault in self.faults:
                if fault.count > 0 and fault.route in (None, route):
                    fault.count -= 1
                    self.faulted[route] += 1
                    headers = {"Retry-After": fault.retry_after} if fault.retry_after is not None else None
                    raise HTTPException(fault.status, fault.detail, headers=headers)

    def _table(self, project_id: str, table: str) -> dict[str, dict[str, Any]]:
        rows = self.tables.get((project_id, table))  # lock held
        if rows is None:
            raise HTTPException(404, "Table not found")
        return rows

    def _row(self, project_id: str, table: str, row_id: str) -> dict[str, Any]:
        row = self._table(project_id, table).get(row_id)  # lock held
        if row is None:
            raise HTTPException(404, "Row not found")
        return row


def _now() -> str:
    return datetime.now(UTC).isoformat()


def _matches(data: dict[str, Any], filters: dict[str, Any]) -> bool:
    for name, condition in filters.items():
        value = data.get(name)
        if not isinstance(condition, dict):
            condition = {"$eq": condition}
        for op, operand in condition.items():
            if op not in OPERATORS:
                raise HTTPException(422, f"unsupported operator {op}")
            if not _compare(op, value, operand):
                return False
    return True


def _compare(op: str, value: Any, operand: Any) -> bool:
    if op == "$eq":
        return bool(value == operand)
    if op == "$ne":
        return bool(value != operand)
    if op == "$in":
        if not isinstance(operand, list):
            raise HTTPException(422, "$in takes a list")
        return value in operand
    if value is None or isinstance(value, bool) != isinstance(operand, bool):
        return False
    try:
        return bool({"$gt": value > operand, "$gte": value >= operand,
                     "$lt": value < operand, "$lte": value <= operand}[op])  # fmt: skip
    except TypeError:
        return False


def _cosine(a: list[float], b: list[float]) -> float:
    if len(a) != len(b):
        return -1.0
    dot = sum(x * y for x, y in zip(a, b, strict=True))
    norm = math.sqrt(sum(x * x for x in a)) * math.sqrt(sum(y * y for y in b))
    return dot / norm if norm else 0.0


class EmulatorServer:
    """An emulator served by uvicorn on 127.0.0.1; :meth:`restart` serves the same data on the same port."""

    def __init__(self, emulator: ZeroDBEmulator) -> None:
        self.emulator = emulator
        self.server = UvicornThread(emulator.app()).start()

    @property
    def url(self) -> str:
        """The base URL (without the path prefix)."""
        return self.server.url

    def stop(self) -> None:
        """Stop serving (connections are refused until :meth:`start`)."""
        self.server.stop()

    def start(self) -> None:
        """Serve the same emulator again on the same port."""
        self.server = UvicornThread(self.emulator.app(), self.server.port).start()
