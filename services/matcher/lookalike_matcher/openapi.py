"""The matcher's OpenAPI 3.1 document, with schemas generated from the pydantic contracts."""

from __future__ import annotations

from functools import lru_cache
from typing import Any

from pydantic import BaseModel, TypeAdapter

from lookalike_shared.contracts import (
    MATCHER_MAX_LIMIT,
    Comparison,
    ErrorBody,
    ImageId,
    MatcherCompareRequest,
    MatcherSearchRequest,
    MatcherSearchResponse,
    MatcherStats,
)
from lookalike_shared.http import NOT_READY_SCHEMA

# The API's limits, documented here and enforced by app.py. A fingerprint is an object four
# levels deep with about a thousand values (hashes, the layout vector, region boxes): bodies
# beyond these are not fingerprints.
MAX_JSON_DEPTH = 8
MAX_JSON_VALUES = 4096
MAX_UPLOAD_PARTS = 8  # `image` and `limit`


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
    return {
        "openapi": "3.1.0",
        "info": {
            "title": "lookalike matcher",
            "version": "1",
            "description": "Finds the catalogue images a query image shows, through crops, "
            "frames, flips, turns and recolouring.",
        },
        "paths": {
            "/v1/search": {"post": _search_operation()},
            "/v1/compare": {"post": _compare_operation()},
            "/v1/images/{image_id}": {"get": _image_operation()},
            **_service_paths(),
        },
        "components": {"schemas": _schemas()},
    }


def _schemas() -> dict[str, Any]:
    models: list[type[BaseModel]] = [
        MatcherSearchRequest,
        MatcherSearchResponse,
        MatcherCompareRequest,
        Comparison,
        MatcherStats,
        ErrorBody,
    ]
    schemas: dict[str, Any] = {}
    for model in models:
        schema = model.model_json_schema(ref_template="#/components/schemas/{model}")
        schemas.update(schema.pop("$defs", {}))
        schemas[model.__name__] = schema
    return schemas


def _search_operation() -> dict[str, Any]:
    upload = {
        "type": "object",
        "required": ["image"],
        "properties": {
            "image": {"type": "string", "format": "binary"},
            "limit": {"type": "integer", "minimum": 1, "maximum": MATCHER_MAX_LIMIT},
        },
    }
    return {
        "summary": "Search by a fingerprint or a catalogue image id (JSON: `fingerprint` or "
        "`image_id`, which 404s if this matcher does not hold it) or by an image (multipart).",
        "description": f"A JSON body is at most {MAX_JSON_DEPTH} levels deep with "
        f"{MAX_JSON_VALUES} values; a form at most {MAX_UPLOAD_PARTS} fields; the body arrives "
        "within LOOKALIKE_BODY_TIMEOUT_SECONDS of the headers (else 408).",
        "requestBody": {
            "required": True,
            "content": {
                "application/json": {"schema": _ref("MatcherSearchRequest")},
                "multipart/form-data": {"schema": upload},
            },
        },
        "responses": {
            "200": _json(_ref("MatcherSearchResponse"), "Matches, best first."),
            "400": _error("Invalid request; `field` names what is wrong."),
            "408": _error("The body did not arrive within the deadline."),
            "413": _error("Request or image too large, or too many form fields."),
            "415": _error("Neither JSON nor multipart."),
            "422": _error("The upload is not an image we accept."),
            "503": _error("No worker process can fingerprint an upload now."),
        },
    }


def _compare_operation() -> dict[str, Any]:
    binary = {"type": "string", "format": "binary"}
    upload = {"type": "object", "required": ["a", "b"], "properties": {"a": binary, "b": binary}}
    return {
        "summary": "Is b the same artwork as a? Each side a fingerprint or a catalogue image id "
        "(JSON; an id this matcher does not hold 404s), or both uploaded (multipart).",
        "description": "The verdict a search would give on the pair, at the same threshold, "
        "with where each image lies on the other and the keypoints matched. Limits as for "
        "/v1/search.",
        "requestBody": {
            "required": True,
            "content": {
                "application/json": {"schema": _ref("MatcherCompareRequest")},
                "multipart/form-data": {"schema": upload},
            },
        },
        "responses": {
            "200": _json(_ref("Comparison"), "The verdict and its evidence."),
            "400": _error("Invalid request; `field` names what is wrong."),
            "404": _error("An image id this matcher does not hold."),
            "408": _error("The body did not arrive within the deadline."),
            "413": _error("Request or image too large."),
            "415": _error("Neither JSON nor multipart."),
            "422": _error("An upload is not an image we accept; `field` says which."),
            "503": _error("No worker process can fingerprint an upload now."),
        },
    }


def _image_operation() -> dict[str, Any]:
    image_id = {
        "name": "image_id",
        "in": "path",
        "required": True,
        "schema": TypeAdapter(ImageId).json_schema(),
    }
    return {
        "summary": "What the index holds for one image.",
        "parameters": [image_id],
        "responses": {
            "200": _json({"type": "object"}, "The indexed image."),
            "400": _error("Not an image id."),
            "404": _error("Not in this matcher."),
        },
    }


def _service_paths() -> dict[str, Any]:
    """Health, metrics and this document: what every service answers."""
    text = {"text/plain": {"schema": {"type": "string"}}}
    return {
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
                    "503": _json(
                        NOT_READY_SCHEMA,
                        "Not ready: `reason` says why, `reasons` lists every part not ready.",
                    ),
                },
            }
        },
        "/metrics": {
            "get": {
                "summary": "Prometheus metrics.",
                "responses": {"200": {"description": "Text exposition format.", "content": text}},
            }
        },
        "/openapi.json": {
            "get": {
                "summary": "This document.",
                "responses": {"200": _json({"type": "object"}, "OpenAPI 3.1.")},
            }
        },
    }
