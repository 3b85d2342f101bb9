"""Property-based API testing: schemathesis drives every endpoint of the app's own OpenAPI schema.

For each operation, a fixed number of generated requests (seeded: ``derandomize=True``) goes to
the in-process ASGI app, and for ``POST /v1/predict`` as many that break the schema (headers,
bodies, media types); none may get a 5xx.
"""

from __future__ import annotations

import collections
from collections.abc import Iterator
from pathlib import Path

import pytest
import schemathesis
from hypothesis import HealthCheck, Phase, given, settings
from schemathesis import GenerationMode
from schemathesis.python import asgi

from stealguard.serve.app import ServeConfig, create_app

EXAMPLES = 60
"""Generated requests per operation and generation mode."""
OPERATIONS = {("GET", "/healthz"), ("GET", "/v1/model"), ("GET", "/v1/usage"), ("POST", "/v1/predict")}


@pytest.fixture(scope="module")
def schema(victim_dir: Path, tmp_path_factory: pytest.TempPathFactory) -> Iterator[schemathesis.BaseSchema]:
    data = tmp_path_factory.mktemp("schemathesis")
    app = create_app(ServeConfig(victim=str(victim_dir), data_dir=str(data), max_batch=8, threads=1, quota=10**9))
    yield schemathesis.openapi.from_asgi("/openapi.json", app)
    asgi.shutdown_lifespans()


def test_the_schema_lists_every_endpoint(schema: schemathesis.BaseSchema) -> None:
    listed = {(result.ok().method.upper(), result.ok().path) for result in schema.get_all_operations()}
    assert listed == OPERATIONS


CASES = [(method, path, GenerationMode.POSITIVE) for method, path in sorted(OPERATIONS)] + [
    ("POST", "/v1/predict", GenerationMode.NEGATIVE),  # the only operation with inputs (headers, body) to break
]


@pytest.mark.parametrize(("method", "path", "mode"), CASES, ids=[f"{m} {p} {g.value}" for m, p, g in CASES])
def test_no_generated_request_gets_a_server_error(schema: schemathesis.BaseSchema, method: str, path: str, mode: GenerationMode) -> None:
    operation = schema[path][method]
    statuses: list[int] = []

    @settings(
        max_examples=EXAMPLES, derandomize=True, database=None, deadline=None,
        phases=[Phase.explicit, Phase.generate], suppress_health_check=list(HealthCheck),
    )
    @given(case=operation.as_strategy(generation_mode=mode))
    def run(case: schemathesis.Case) -> None:
        response = case.call()
        statuses.append(response.status_code)
        assert response.status_code < 500, f"{response.status_code} {response.text[:300]}\n{case.as_curl_command()}"

    run()
    assert statuses, "no request was generated"
    if mode is GenerationMode.POSITIVE:
        assert 200 in statuses, f"no generated request was answered: {sorted(collections.Counter(statuses).items())}"
