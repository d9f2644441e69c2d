"""The image a search searches with: an upload or a stranger's URL analysed in the process
pool (fingerprint and embedding from one decode), or for "more like this" a catalogue
image's stored vector; and the client's errors when the image cannot be used."""

from __future__ import annotations

import time
from dataclasses import dataclass
from dataclasses import field as default

from lookalike_shared.contracts import Fingerprint
from lookalike_shared.fetch import FetchError, ImageFetcher
from lookalike_shared.imaging import ImageRejected
from lookalike_shared.pool import WorkerPool, analyse_in_pool
from lookalike_shared.search_index import stored_vector

from .es_queries import CatalogueSearch
from .params import BadRequest, SearchRequest
from .settings import GatewaySettings
from .timing import BackendFailed, record_call, timed


@dataclass(frozen=True)
class ImageQuery:
    """What an image search searches with."""

    fingerprint: Fingerprint | None  # None for "more like this": the matcher uses its entry
    # As the index stores it (search_index.stored_vector); None: no vector (a document
    # indexed before the embedding)
    embedding: str | None
    subjects: list[str] = default(default_factory=list)
    image_id: str | None = None  # "more like this"


async def query_of(
    request: SearchRequest,
    catalogue: CatalogueSearch,
    fetcher: ImageFetcher,
    pool: WorkerPool,
    settings: GatewaySettings,
) -> ImageQuery | None:
    """What to search with: the uploaded or fetched image analysed (fingerprint and
    embedding, one decode), or a catalogue image's stored vector; BadRequest before
    anything is streamed. None for words and filters alone."""
    params = request.params
    data = request.image
    if params.image_id is not None:
        try:
            vector = await timed(
                "es_hydrate",
                catalogue.embedding_of(params.image_id),
                settings.es_timeout_seconds,
            )
        except BackendFailed as exc:
            raise BadRequest("backend_unavailable", str(exc), "image_id", 503) from exc
        if vector is None:
            raise BadRequest(
                "not_found", f"no catalogue image {params.image_id!r}", "image_id", 404
            )
        return ImageQuery(fingerprint=None, embedding=vector or None, image_id=params.image_id)
    if params.image_url is not None:
        try:
            # A stranger's URL: never a file on our disks, whatever the file root.
            data = await fetcher.fetch(params.image_url, allow_files=False)
        except FetchError as exc:
            raise url_refused(exc, "image_url") from exc
    if data is None:
        return None
    started = time.perf_counter()
    try:
        analysis = await analyse_in_pool(pool, data, query=True)
    except ImageRejected as exc:
        raise image_refused(exc, "image_url" if params.image_url else "image") from exc
    finally:
        record_call("fingerprint", started)
    return ImageQuery(
        fingerprint=analysis.fingerprint,
        embedding=stored_vector(analysis.embedding),
        subjects=analysis.subjects,
    )


def url_refused(exc: FetchError, field: str) -> BadRequest:
    """A stranger's image URL that cannot be used, as the client's error."""
    status = 422 if exc.code in ("fetch_not_found", "image_too_large") else 400
    return BadRequest(exc.code, str(exc), field, 502 if exc.transient else status)


def image_refused(exc: ImageRejected, field: str) -> BadRequest:
    """Bytes that are not an image we accept, as the client's error."""
    status = 413 if exc.code in ("image_too_large", "decompression_bomb") else 422
    return BadRequest(exc.code, str(exc), field, status)
