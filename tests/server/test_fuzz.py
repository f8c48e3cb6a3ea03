"""The collector's OpenAPI schema fuzzed with schemathesis: no 5xx, and no read across projects."""

from __future__ import annotations

import uuid

import httpx
import schemathesis
from hypothesis import HealthCheck, given, settings

from rlhfkit._models import new_id
from tests.server._fixtures import Collector, Project


def test_fuzzed_requests_never_fail_the_server_nor_leak_other_projects(collector: Collector, project: Project) -> None:
    """Every operation of the schema, fed generated inputs with a valid key, answers < 500 and never shows another project's data."""
    marker = f"SECRET-{uuid.uuid4().hex}"
    other_key = collector.keys.create(f"test-{uuid.uuid4().hex[:12]}", "victim")
    seeded = {"interactions": [{"id": new_id(), "prompt": marker, "response": marker, "session_id": marker}]}
    reply = httpx.post(f"{collector.url}/v1/interactions/batch", json=seeded, headers={"Authorization": f"Bearer {other_key}"})
    assert reply.status_code == 200

    schema = schemathesis.openapi.from_url(f"{collector.url}/openapi.json")
    operations = [result.ok() for result in schema.get_all_operations()]
    assert len(operations) >= 13
    failures: list[str] = []
    for operation in operations:

        @given(case=operation.as_strategy())
        @settings(max_examples=25, deadline=None, database=None, suppress_health_check=list(HealthCheck))
        def call(case: schemathesis.Case) -> None:
            response = case.call(base_url=collector.url, headers=project.headers, timeout=30)
            if response.status_code >= 500 or marker.encode() in response.content:
                failures.append(f"{case.method} {case.formatted_path}: {response.status_code} {response.content[:200]!r}")

        call()
    assert failures == []
