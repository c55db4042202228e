"""OpenAPI for routes that read a multipart form themselves."""

from __future__ import annotations

from typing import Any


def multipart_body(json_part: str, file_parts: tuple[str, ...]) -> dict[str, Any]:
    """The OpenAPI request body of a multipart route (it reads the form itself), so that
    clients and schemathesis see what it takes."""
    files = {"type": "array", "items": {"type": "string", "format": "binary"}}
    return {
        "requestBody": {
            "required": True,
            "content": {
                "multipart/form-data": {
                    "schema": {
                        "type": "object",
                        "properties": {
                            json_part: {"type": "string", "description": "JSON"},
                            **{name: files for name in file_parts},
                        },
                        "required": [json_part],
                    }
                }
            },
        }
    }
