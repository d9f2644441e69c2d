from __future__ import annotations

from pydantic import Field

from lookalike_shared.fetch import FetchSettings
from lookalike_shared.imaging import MAX_IMAGE_BYTES


class IngestSettings(FetchSettings):
    group_id: str = Field("lookalike-ingest", description="Kafka consumer group of the workers.")
    group_instance_id: str | None = Field(
        None,
        description="Static group membership (Kafka's group.instance.id): a worker restarted "
        "under the same id takes its partitions back at once, instead of after the dead one's "
        "session times out. Unique per worker, or unset.",
    )
    bind_host: str = Field("0.0.0.0", description="Address of the health/metrics server.")
    ingest_port: int = Field(8082, description="Port of /livez, /readyz and /metrics.")
    max_image_bytes: int = Field(
        MAX_IMAGE_BYTES, description="Larger image files are dead-lettered unread."
    )
    pool_workers: int = Field(0, description="Fingerprint processes; 0 means one per CPU.")
    max_in_flight: int = Field(32, description="Images processed at once (different keys).")
    batch_max_records: int = Field(500, description="Records taken per poll.")
    fetch_max_attempts: int = Field(
        5, description="Tries for a transient fetch failure before the event is dead-lettered."
    )
    backoff_base_seconds: float = Field(0.2, description="First retry delay (doubles, jittered).")
    backoff_cap_seconds: float = Field(30.0, description="Longest retry delay.")
