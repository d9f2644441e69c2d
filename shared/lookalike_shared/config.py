"""Settings shared by every service, read from `LOOKALIKE_*` environment variables."""

from __future__ import annotations

from pydantic import Field
from pydantic_settings import BaseSettings, SettingsConfigDict


class CommonSettings(BaseSettings):
    """Where the backends are and what the shared topics and index are called."""

    model_config = SettingsConfigDict(env_prefix="LOOKALIKE_", extra="ignore")

    kafka_bootstrap: str = Field(
        "127.0.0.1:9092", description="Kafka bootstrap servers, comma-separated host:port."
    )
    kafka_idempotence: bool = Field(
        True,
        description="Idempotent producers (a retried send is written once); turn off only "
        "for a Kafka-protocol broker that refuses them.",
    )
    kafka_idle_rest_ms: int = Field(
        0,
        ge=0,
        le=5000,
        description="Stop fetching a partition read to its end for this long "
        "(kafka.Poller). 0 for Kafka, which holds an empty fetch open itself "
        "(fetch.max.wait.ms); the local stack sets it for the embedded stand-in, which "
        "answers an empty fetch at once, so that a consumer would otherwise keep asking and "
        "keep a core busy.",
    )
    es_url: str = Field("http://127.0.0.1:9200", description="Elasticsearch base URL.")
    catalogue_topic: str = Field("catalogue.images", description="Catalogue change events.")
    fingerprint_topic: str = Field(
        "lookalike.fingerprints", description="Compacted topic of fingerprint records."
    )
    es_alias: str = Field("lookalike-images", description="Alias the services read and write.")
    catalogue_profile: str | None = Field(
        None,
        description="A TOML catalogue profile (docs/integration.md): enrich and search the "
        "library's own Elasticsearch index instead of keeping one of lookalike's own.",
    )
    log_level: str = Field("INFO", description="Python logging level name.")

    @property
    def dlq_topic(self) -> str:
        return f"{self.catalogue_topic}.dlq"


def split_csv(value: object) -> object:
    """Let list settings be written as `a,b,c` in the environment."""
    if isinstance(value, str):
        return [part.strip() for part in value.split(",") if part.strip()]
    return value


def env_help(settings_class: type[BaseSettings]) -> str:
    """The environment variables a settings class reads, for a command's --help."""
    lines = ["environment variables:"]
    for name, field in settings_class.model_fields.items():
        default = field.get_default(call_default_factory=True)
        description = field.description or ""
        lines.append(f"  LOOKALIKE_{name.upper():<28} {description} [default: {default}]")
    return "\n".join(lines)
