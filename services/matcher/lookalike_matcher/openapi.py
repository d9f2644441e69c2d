"""The matcher's OpenAPI 3.1 document, with schemas generated from the pydantic contracts."""

from __future__ import annotations

from functools import lru_cache
from typing import Any

from pydantic import BaseModel

from lookalike_shared.contracts import (
    ErrorBody,
    MatcherSearchRequest,
    MatcherSearchResponse,
    MatcherStats,
)


def _ref(name: str) -> dict[str, str]:
    return {"$ref": f"#/components/schemas/{name}"}


def _json(schema: dict[str, Any], description: str) -> dict[str, Any]:
    return {"description": description, "content": {"application/json": {"schema": schema}}}


def _error(description: str) -> dict[str, Any]:
    return _json(_ref("ErrorBody"), description)


def _plain(description: str) -> dict[str, Any]:
    status = {"type": "object", "properties": {"status": {"type": "string"}}}
    return _json(status, description)


@lru_cache(maxsize=1)
def openapi_document() -> dict[str, Any]:
    models: list[type[BaseModel]] = [
        MatcherSearchRequest,
        MatcherSearchResponse,
        MatcherStats,
        ErrorBody,
    ]
    schemas: dict[str, Any] = {}
    for model in models:
        schema = model.model_json_schema(ref_template="#/components/schemas/{model}")
        schemas.update(schema.pop("$defs", {}))
        schemas[model.__name__] = schema
    image_id = {"name": "image_id", "in": "path", "required": True, "schema": {"type": "string"}}
    return {
        "openapi": "3.1.0",
        "info": {
            "title": "lookalike matcher",
            "version": "1",
            "description": "Finds the catalogue images a query image shows, through crops, "
            "frames, flips, turns and recolouring.",
        },
        "paths": {
            "/v1/search": {
                "post": {
                    "summary": "Search by a fingerprint or a catalogue image id (JSON: "
                    "`fingerprint` or `image_id`, which 404s if this matcher does not hold it) "
                    "or by an image (multipart).",
                    "requestBody": {
                        "required": True,
                        "content": {
                            "application/json": {"schema": _ref("MatcherSearchRequest")},
                            "multipart/form-data": {
                                "schema": {
                                    "type": "object",
                                    "required": ["image"],
                                    "properties": {
                                        "image": {"type": "string", "format": "binary"},
                                        "limit": {"type": "integer", "minimum": 1, "maximum": 200},
                                    },
                                }
                            },
                        },
                    },
                    "responses": {
                        "200": _json(_ref("MatcherSearchResponse"), "Matches, best first."),
                        "400": _error("Invalid request."),
                        "413": _error("Request or image too large."),
                        "415": _error("Neither JSON nor multipart."),
                        "422": _error("The upload is not an image we accept."),
                    },
                }
            },
            "/v1/images/{image_id}": {
                "get": {
                    "summary": "What the index holds for one image.",
                    "parameters": [image_id],
                    "responses": {
                        "200": _json({"type": "object"}, "The indexed image."),
                        "404": _error("Not in this matcher."),
                    },
                }
            },
            "/v1/stats": {
                "get": {
                    "summary": "Index size and readiness.",
                    "responses": {"200": _json(_ref("MatcherStats"), "Statistics.")},
                }
            },
            "/livez": {"get": {"summary": "Liveness.", "responses": {"200": _plain("Alive.")}}},
            "/readyz": {
                "get": {
                    "summary": "Ready once the index is loaded and caught up with the topic.",
                    "responses": {
                        "200": _plain("Ready."),
                        "503": _plain("Not ready; `reason` says why."),
                    },
                }
            },
            "/metrics": {
                "get": {
                    "summary": "Prometheus metrics.",
                    "responses": {
                        "200": {
                            "description": "Text exposition format.",
                            "content": {"text/plain": {"schema": {"type": "string"}}},
                        }
                    },
                }
            },
            "/openapi.json": {
                "get": {
                    "summary": "This document.",
                    "responses": {"200": _json({"type": "object"}, "OpenAPI 3.1.")},
                }
            },
        },
        "components": {"schemas": schemas},
    }
