from __future__ import annotations

from typing import Annotated

from pydantic import Field, field_validator
from pydantic_settings import NoDecode

from lookalike_shared.config import split_csv
from lookalike_shared.fetch import FetchSettings

from .params import DEFAULT_PAGE_SIZE, MAX_PAGE_SIZE


class GatewaySettings(FetchSettings):
    bind_host: str = Field("0.0.0.0", description="Address the HTTP server listens on.")
    gateway_port: int = Field(8080, description="Port of the search API and page.")
    matcher_urls: Annotated[list[str], NoDecode] = Field(
        default_factory=lambda: ["http://127.0.0.1:8081"],
        description="Matcher base URLs, one per shard (comma-separated); answers are merged.",
    )
    matcher_timeout_seconds: float = Field(2.0, description="Deadline of a matcher call.")
    es_timeout_seconds: float = Field(3.0, description="Deadline of each Elasticsearch query.")
    es_max_concurrent_searches: int = Field(
        8,
        ge=1,
        description="Elasticsearch searches (look-alike, keyword) one gateway process keeps "
        "in flight; more wait their turn (within es_timeout_seconds), so id lookups do not "
        "queue behind them in Elasticsearch.",
    )
    duplicates_head_start_seconds: float = Field(
        0.25,
        description="How long Elasticsearch's look-alike and keyword searches wait for the "
        "matcher's duplicates to be looked up first (0 sends all at once). Past the "
        "matcher's usual answer: an Elasticsearch that runs one search at a time (the "
        "stand-in) would otherwise queue the duplicates' lookup behind a kNN scan.",
    )
    page_size: int = Field(
        DEFAULT_PAGE_SIZE,
        ge=1,
        le=MAX_PAGE_SIZE,
        description="Hits a search without `limit` gets; the search page shows this many a page.",
    )
    max_upload_bytes: int = Field(25 * 1024 * 1024, description="Largest request body accepted.")
    fetch_timeout_seconds: float = Field(10.0, description="Deadline for fetching image_url.")
    pool_workers: int = Field(0, description="Fingerprint processes; 0 means one per CPU.")
    pool_start_timeout_seconds: float = Field(
        120.0,
        gt=0,
        description="Worker processes not started and warmed within this are broken: "
        "/readyz says POOL-BROKEN and image searches get 503 until a restart succeeds.",
    )
    body_timeout_seconds: float = Field(
        60.0,
        gt=0,
        description="A request body not fully received this long after its headers is cut "
        "off with 408 (a slow or stalled client holds no connection for longer).",
    )
    similar_min_score: float = Field(
        0.0,
        description="Least cosine similarity (0..1) for a look-alike to be shown. 0 shows the "
        "nearest images whatever their similarity: look-alikes are ranked, not judged.",
    )

    _split_urls = field_validator("matcher_urls", mode="before")(split_csv)
