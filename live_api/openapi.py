"""The OpenAPI document: every `/api` operation documents the bearer token (HTTPBearer, from
the `CurrentCaller`/`Admin` dependencies) and the error answers it may give, in one shape
(`ErrorOut`), so that clients and schemathesis see the API as it behaves.

Installed by `install(app)` after the routers are included; routes may declare more precise
responses themselves, which are kept.
"""

from __future__ import annotations

from typing import Any

from fastapi import FastAPI

from live_api.schemas import ErrorOut

ERROR_REF = {"$ref": "#/components/schemas/ErrorOut"}

API_ERRORS = {
    "400": "the body cannot be parsed (e.g. not JSON)",
    "401": "missing or unknown bearer token",
    "403": "outside the caller's role or region",
    "422": "invalid input; `detail` names the problem",
}
INGEST_ERRORS = {
    "400": "rejected; `detail` holds `reason` and `message` (kept in the rejected log)",
    "401": "OwnTracks HTTP without valid Basic auth (the engineer id and its MQTT password)",
    "413": "body too large",
    "422": "invalid query parameters",
    "429": "too many requests from this address or for this identity; retry after Retry-After",
}


def _error(description: str) -> dict[str, Any]:
    return {"description": description, "content": {"application/json": {"schema": ERROR_REF}}}


def _is_fastapi_validation(response: dict[str, Any]) -> bool:
    schema = response.get("content", {}).get("application/json", {}).get("schema", {})
    return bool(schema.get("$ref", "").endswith("/HTTPValidationError"))


def document_errors(schema: dict[str, Any]) -> dict[str, Any]:
    """Add the common error answers to the operations of an OpenAPI document, in place."""
    components = schema.setdefault("components", {}).setdefault("schemas", {})
    components.setdefault(
        "ErrorOut", ErrorOut.model_json_schema(ref_template="#/components/schemas/{model}")
    )
    for path, operations in schema.get("paths", {}).items():
        for method, op in operations.items():
            if method not in ("get", "post", "put", "patch", "delete"):
                continue
            responses = op.setdefault("responses", {})
            if "422" in responses and _is_fastapi_validation(responses["422"]):
                del responses["422"]
            if path.startswith("/api/"):
                errors = dict(API_ERRORS)
                errors["404"] = "a resource named in the path or body does not exist"
                if method != "get":
                    errors["409"] = "conflicts with the current state or stored data"
                    errors["413"] = "body larger than the route's limit (live_api.boundary)"
            elif "ingest" in op.get("tags", []):
                errors = dict(INGEST_ERRORS)
            elif path == "/healthz":
                responses.setdefault(
                    "503",
                    {
                        "description": "a component is not up (the body says which)",
                        "content": {"application/json": {"schema": {"type": "object"}}},
                    },
                )
                continue
            else:
                continue
            for code, description in errors.items():
                responses.setdefault(code, _error(description))
    return schema


def install(app: FastAPI) -> None:
    """Make `app.openapi()` return the document with the common error answers."""
    generate = app.openapi

    def openapi() -> dict[str, Any]:
        if app.openapi_schema is None:
            app.openapi_schema = document_errors(generate())
        return app.openapi_schema

    app.openapi = openapi  # type: ignore[method-assign]
