"""The gateway's OpenAPI 3.1 document, built from the same pydantic models that validate
requests and shape the NDJSON lines, so it cannot drift from what the code accepts."""

from __future__ import annotations

from typing import Any

from lookalike_shared.contracts import DoneLine, ErrorBody, HitLine

from .params import SearchParams

_REF = "#/components/schemas/{model}"


def _schemas() -> dict[str, Any]:
    schemas: dict[str, Any] = {}
    for model in (SearchParams, HitLine, DoneLine, ErrorBody):
        schema = model.model_json_schema(ref_template=_REF)
        schemas.update(schema.pop("$defs", {}))
        schemas[model.__name__] = schema
    done = schemas["DoneLine"]
    done["properties"]["totals"] = {
        "type": "object",
        "description": "How many images of the whole answer each group holds.",
        "properties": {k: {"type": "integer"} for k in ("duplicate", "similar", "text")},
    }
    done["properties"]["timings_ms"] = {
        "type": "object",
        "description": (
            "Where the time went: milliseconds reading the request (`upload`) and per backend "
            "(fingerprint, matcher, es_similar, es_keyword, es_hydrate, es_rerank), when the "
            "first hit and the keyword search were ready (`first_hit_at`, "
            "`es_keyword_done_at`, from the request's start), and `gateway`: the time with "
            "neither the upload nor any backend call in flight."
        ),
        "additionalProperties": {"type": ["number", "null"]},
    }
    return schemas


def _error(description: str) -> dict[str, Any]:
    return {
        "description": description,
        "content": {"application/json": {"schema": {"$ref": _REF.format(model="ErrorBody")}}},
    }


def _search_operation() -> dict[str, Any]:
    params_ref = {"$ref": _REF.format(model="SearchParams")}
    upload = {
        "allOf": [
            params_ref,
            {
                "type": "object",
                "properties": {
                    "image": {
                        "type": "string",
                        "format": "binary",
                        "description": "The query image; its type is sniffed, not trusted.",
                    }
                },
            },
        ]
    }
    pasted = {
        "allOf": [
            params_ref,
            {
                "type": "object",
                "properties": {
                    "image": {
                        "type": "string",
                        "description": "A pasted image as a data: URL or plain base64.",
                    }
                },
            },
        ]
    }
    return {
        "operationId": "search",
        "summary": "Search by image, words and filters; the answer streams as NDJSON.",
        "description": (
            "Give at most one of `image` (upload or pasted), `image_url` or `image_id` (more "
            "like this, leaving the image itself out), plus optional `q` and filters. The "
            "answer is `application/x-ndjson`: `hit` lines (duplicates, then look-alikes, "
            "then keyword hits; each image once) flushed as each group is ready, then one "
            "`done` line. A backend that is down or slow adds a warning to `done`."
        ),
        "requestBody": {
            "required": False,
            "content": {
                "multipart/form-data": {"schema": upload},
                "application/x-www-form-urlencoded": {"schema": params_ref},
                "application/json": {"schema": pasted},
            },
        },
        "responses": {
            "200": {
                "description": "One JSON object a line: hit lines, then a done line.",
                "content": {
                    "application/x-ndjson": {
                        "schema": {
                            "oneOf": [
                                {"$ref": _REF.format(model="HitLine")},
                                {"$ref": _REF.format(model="DoneLine")},
                            ]
                        }
                    }
                },
            },
            "400": _error("A parameter is unknown or malformed; `field` names it."),
            "404": _error("`image_id` is not in the catalogue."),
            "413": _error("The body or the image is over the size or pixel limit."),
            "415": _error("The body is not multipart, a form or JSON."),
            "422": _error("The image cannot be used: empty, truncated, not an image."),
            "502": _error("`image_url` could not be fetched (its server failed)."),
            "503": _error("The catalogue needed to answer is unavailable."),
        },
    }


def _health(summary: str, content_type: str = "application/json") -> dict[str, Any]:
    return {
        "get": {
            "summary": summary,
            "responses": {"200": {"description": "OK", "content": {content_type: {}}}},
        }
    }


def openapi_document() -> dict[str, Any]:
    readyz = _health("Ready to search; 503 with a reason until then.")
    readyz["get"]["responses"]["503"] = {"description": "Not ready, with a `reason`."}
    return {
        "openapi": "3.1.0",
        "info": {
            "title": "lookalike search gateway",
            "version": "1",
            "description": "Reverse image search over the catalogue, merged with keywords.",
        },
        "paths": {
            "/v1/search": {"post": _search_operation()},
            "/v1/images/{image_id}/thumbnail": {
                "get": {
                    "operationId": "thumbnail",
                    "summary": "A small JPEG preview of a catalogue image.",
                    "parameters": [
                        {
                            "name": "image_id",
                            "in": "path",
                            "required": True,
                            "schema": {"type": "string"},
                        }
                    ],
                    "responses": {
                        "200": {"description": "JPEG", "content": {"image/jpeg": {}}},
                        "404": _error("No such catalogue image."),
                        "502": _error("The catalogue's image cannot be fetched or decoded."),
                        "503": _error("The catalogue is unavailable."),
                    },
                }
            },
            "/v1/images/{image_id}/colors": {
                "get": {
                    "operationId": "imageColors",
                    "summary": "A catalogue image's palette: its main colours and the share "
                    "of the image each covers (0-1), plus its named colours. The palette "
                    "can be sent back as `palette` (weights as percentages) to search by it.",
                    "parameters": [
                        {
                            "name": "image_id",
                            "in": "path",
                            "required": True,
                            "schema": {"type": "string"},
                        }
                    ],
                    "responses": {
                        "200": {"description": "The palette", "content": {"application/json": {}}},
                        "404": _error("No such catalogue image."),
                        "503": _error("The catalogue is unavailable."),
                    },
                }
            },
            "/": _health("The search page.", "text/html"),
            "/static/{filename}": {
                "get": {
                    "summary": "The search page's scripts and styles.",
                    "parameters": [
                        {
                            "name": "filename",
                            "in": "path",
                            "required": True,
                            "schema": {"type": "string"},
                        }
                    ],
                    "responses": {"200": {"description": "A static file."}},
                }
            },
            "/openapi.json": _health("This document."),
            "/livez": _health("The process is alive."),
            "/readyz": readyz,
            "/metrics": _health("Prometheus metrics.", "text/plain"),
        },
        "components": {"schemas": _schemas()},
    }
