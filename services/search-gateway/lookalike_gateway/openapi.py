"""The gateway's OpenAPI 3.1 document, built from the same pydantic models that validate
requests and shape the NDJSON lines, so it cannot drift from what the code accepts."""

from __future__ import annotations

from typing import Any

from pydantic import TypeAdapter

from lookalike_shared.contracts import (
    NAMED_COLORS,
    Comparison,
    DoneLine,
    ErrorBody,
    HitLine,
    ImageId,
)
from lookalike_shared.http import MAX_FIELD_BYTES as MAX_HEADER_BYTES
from lookalike_shared.http import MAX_LINE_BYTES, NOT_READY_SCHEMA

from .compare import CompareParams
from .params import (
    MAX_CURSOR_CHARS,
    MAX_FIELD_BYTES,
    MAX_FORM_FIELDS,
    MAX_JSON_DEPTH,
    MAX_JSON_VALUES,
    SearchParams,
)

_REF = "#/components/schemas/{model}"
IMAGE_ID_SCHEMA = TypeAdapter(ImageId).json_schema()
LIMITS = (
    f"Limits, each refused with a 4xx in the error shape: a form of at most {MAX_FORM_FIELDS} "
    f"fields (413 `too_many_fields`), each but `image` at most {MAX_FIELD_BYTES} bytes; a "
    f"JSON body at most {MAX_JSON_DEPTH} levels deep with at most {MAX_JSON_VALUES} values "
    f"(400 `invalid_body`); `colors` and `format` at most one of each choice; `cursor` at "
    f"most {MAX_CURSOR_CHARS} characters; the body at most LOOKALIKE_MAX_UPLOAD_BYTES (413) "
    "and received within LOOKALIKE_BODY_TIMEOUT_SECONDS of the headers (408, connection "
    f"closed). A request line or header line over {MAX_LINE_BYTES} / {MAX_HEADER_BYTES} "
    "bytes, or a multipart part's header line over the latter, is a 400."
)


def _schemas() -> dict[str, Any]:
    schemas: dict[str, Any] = {}
    for model in (SearchParams, HitLine, DoneLine, CompareParams, Comparison, ErrorBody):
        schema = model.model_json_schema(ref_template=_REF)
        schemas.update(schema.pop("$defs", {}))
        schemas[model.__name__] = schema
    # The colours SearchParams' validator accepts, so generated requests use them.
    schemas["SearchParams"]["properties"]["colors"]["items"] = {
        "type": "string",
        "enum": list(NAMED_COLORS),
    }
    return schemas


def _error(description: str) -> dict[str, Any]:
    return {
        "description": description,
        "content": {"application/json": {"schema": {"$ref": _REF.format(model="ErrorBody")}}},
    }


def _with_image(image: dict[str, Any]) -> dict[str, Any]:
    """The search parameters plus an `image` field of the given schema."""
    image_field = {"type": "object", "properties": {"image": image}}
    return {"allOf": [{"$ref": _REF.format(model="SearchParams")}, image_field]}


def _search_operation() -> dict[str, Any]:
    params_ref = {"$ref": _REF.format(model="SearchParams")}
    upload = _with_image(
        {
            "type": "string",
            "format": "binary",
            "description": "The query image; its type is sniffed, not trusted.",
        }
    )
    pasted = _with_image(
        {"type": "string", "description": "A pasted image as a data: URL or plain base64."}
    )
    return {
        "operationId": "search",
        "summary": "Search by image, words and filters; the answer streams as NDJSON.",
        "description": (
            "Give at most one of `image` (upload or pasted), `image_url` or `image_id` (more "
            "like this, leaving the image itself out), plus optional `q` and filters. The "
            "answer is `application/x-ndjson`: `hit` lines (duplicates, then look-alikes, "
            "then keyword hits; each image once) flushed as each group is ready, then one "
            "`done` line. A backend that is down or slow adds a warning to `done`. " + LIMITS
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
            "400": _error(
                "A parameter is unknown or malformed (`field` names it), or the body is "
                "(`invalid_body`: unreadable, nested too deep, too many values)."
            ),
            "404": _error("`image_id` is not in the catalogue."),
            "408": _error("The body did not arrive within the deadline."),
            "413": _error(
                "The body or the image is over the size or pixel limit, or the form has "
                "too many fields."
            ),
            "415": _error("The body is not multipart, a form or JSON."),
            "422": _error("The image cannot be used: empty, truncated, not an image."),
            "502": _error("`image_url` could not be fetched (its server failed)."),
            "503": _error(
                "The catalogue needed to answer is unavailable, or no worker process can "
                "read images right now."
            ),
        },
    }


def _compare_operation() -> dict[str, Any]:
    params_ref = {"$ref": _REF.format(model="CompareParams")}

    def with_images(image: dict[str, Any]) -> dict[str, Any]:
        images = {"type": "object", "properties": {"a": image, "b": image}}
        return {"allOf": [params_ref, images]}

    binary = {"type": "string", "format": "binary"}
    pasted = {"type": "string", "description": "An image as a data: URL or plain base64."}
    answer = {
        "allOf": [
            {"$ref": _REF.format(model="Comparison")},
            {
                "type": "object",
                "properties": {
                    "overlay": {
                        "type": "string",
                        "description": "With `overlay`: a PNG data URL of both images side "
                        "by side, the matched regions outlined and matched keypoints joined.",
                    }
                },
            },
        ]
    }
    return {
        "operationId": "compare",
        "summary": "Is b the same artwork as a? The verdict, with where each lies on the other.",
        "description": (
            "Each side is one of: an image (`a`, `b`: upload or pasted), an image URL "
            "(`a_url`, `b_url`, under the same rules as a search's `image_url`) or a "
            "catalogue image (`a_id`, `b_id`). The verdict is the matcher's, at the same "
            "threshold as a search's `duplicate`. " + LIMITS
        ),
        "requestBody": {
            "required": True,
            "content": {
                "multipart/form-data": {"schema": with_images(binary)},
                "application/x-www-form-urlencoded": {"schema": params_ref},
                "application/json": {"schema": with_images(pasted)},
            },
        },
        "responses": {
            "200": {
                "description": "The verdict and its evidence.",
                "content": {"application/json": {"schema": answer}},
            },
            "400": _error("A side is missing or given twice, or a parameter is malformed."),
            "404": _error("A catalogue id is not in the catalogue."),
            "408": _error("The body did not arrive within the deadline."),
            "413": _error("The body or an image is over the size or pixel limit."),
            "415": _error("The body is not multipart, a form or JSON."),
            "422": _error("An image cannot be used; `field` says which side."),
            "502": _error("An image URL or a catalogue image could not be fetched."),
            "503": _error(
                "The matcher or the catalogue is unavailable, or no worker process can read "
                "images right now."
            ),
        },
    }


def _health(summary: str, content_type: str = "application/json") -> dict[str, Any]:
    return {
        "get": {
            "summary": summary,
            "responses": {"200": {"description": "OK", "content": {content_type: {}}}},
        }
    }


_IMAGE_ID_PARAMETER = {
    "name": "image_id",
    "in": "path",
    "required": True,
    "schema": IMAGE_ID_SCHEMA,
}


def _thumbnail_operation() -> dict[str, Any]:
    return {
        "operationId": "thumbnail",
        "summary": "A small JPEG preview of a catalogue image.",
        "parameters": [_IMAGE_ID_PARAMETER],
        "responses": {
            "200": {
                "description": "JPEG, with an ETag that changes with the image's version.",
                "content": {"image/jpeg": {}},
            },
            "304": {"description": "`If-None-Match` names the current ETag."},
            "400": _error("`image_id` does not match the id pattern."),
            "404": _error("No such catalogue image."),
            "502": _error("The catalogue's image cannot be fetched or decoded."),
            "503": _error("The catalogue is unavailable, or no worker process can render."),
        },
    }


def _colors_operation() -> dict[str, Any]:
    return {
        "operationId": "imageColors",
        "summary": "A catalogue image's palette: its main colours and the share of the image "
        "each covers (0-1), plus its named colours. The palette can be sent back as "
        "`palette` (weights as percentages) to search by it.",
        "parameters": [_IMAGE_ID_PARAMETER],
        "responses": {
            "200": {"description": "The palette", "content": {"application/json": {}}},
            "400": _error("`image_id` does not match the id pattern."),
            "404": _error("No such catalogue image."),
            "503": _error("The catalogue is unavailable."),
        },
    }


def _page_config_operation() -> dict[str, Any]:
    return {
        "operationId": "pageConfig",
        "summary": "What the search page reads at start instead of deciding it itself.",
        "responses": {
            "200": {
                "description": "The gateway's page size (LOOKALIKE_PAGE_SIZE), the largest "
                "`limit` it accepts, the facets a `done` line counts (in the order the page "
                "shows them) and the most colours `palette` may hold.",
                "content": {"application/json": {"schema": PAGE_CONFIG_SCHEMA}},
            }
        },
    }


PAGE_CONFIG_SCHEMA: dict[str, Any] = {
    "type": "object",
    "required": ["page_size", "max_page_size", "facets", "max_palette_colours"],
    "properties": {
        "page_size": {"type": "integer", "minimum": 1},
        "max_page_size": {"type": "integer", "minimum": 1},
        "facets": {"type": "array", "items": {"type": "string"}},
        "max_palette_colours": {"type": "integer", "minimum": 1},
    },
}


def openapi_document() -> dict[str, Any]:
    readyz = _health("Ready to search; 503 with a reason until then.")
    readyz["get"]["responses"]["503"] = {
        "description": "Not ready: `reason` says why, `reasons` lists every part not ready.",
        "content": {"application/json": {"schema": NOT_READY_SCHEMA}},
    }
    return {
        "openapi": "3.1.0",
        "info": {
            "title": "lookalike search gateway",
            "version": "1",
            "description": "Reverse image search over the catalogue, merged with keywords.",
        },
        "paths": {
            "/v1/search": {"post": _search_operation()},
            "/v1/compare": {"post": _compare_operation()},
            "/v1/images/{image_id}/thumbnail": {"get": _thumbnail_operation()},
            "/v1/images/{image_id}/colors": {"get": _colors_operation()},
            "/v1/page-config": {"get": _page_config_operation()},
            "/": _health("The search page.", "text/html"),
            "/static/{filename}": {
                "get": {
                    "summary": "The search page's ES modules (a JavaScript type) and styles.",
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
