from __future__ import annotations

from typing import Annotated

from pydantic import Field, field_validator
from pydantic_settings import NoDecode

from lookalike_shared.config import CommonSettings, split_csv


class MatcherSettings(CommonSettings):
    bind_host: str = Field("0.0.0.0", description="Address the HTTP API listens on.")
    matcher_port: int = Field(8081, description="Port of the HTTP API.")
    matcher_partitions: Annotated[list[int], NoDecode] = Field(
        default_factory=list,
        description="Fingerprint-topic partitions this shard owns; empty means all (a replica).",
    )
    pool_workers: int = Field(1, description="Processes fingerprinting uploaded query images.")
    pool_start_timeout_seconds: float = Field(
        120.0,
        gt=0,
        description="Worker processes not started within this are broken: /readyz says "
        "POOL-BROKEN and uploads get 503 until a restart succeeds.",
    )
    body_timeout_seconds: float = Field(
        60.0,
        gt=0,
        description="A request body not fully received this long after its headers is cut "
        "off with 408.",
    )
    max_request_bytes: int = Field(25 * 1024 * 1024, description="Largest request body accepted.")
    matcher_data_dir: str | None = Field(
        None,
        description="Folder for the index snapshot and keypoint file; empty keeps nothing on "
        "disk, so every start replays the whole topic.",
    )
    deletion_retention_days: float = Field(
        30.0,
        description="How long the version of a deleted image is remembered, refusing older "
        "upserts that arrive late (Elasticsearch's deletion markers are pruned likewise).",
    )
    snapshot_interval_seconds: float = Field(
        300.0, description="Write a snapshot this often while records arrive (and on shutdown)."
    )

    _split = field_validator("matcher_partitions", mode="before")(split_csv)
