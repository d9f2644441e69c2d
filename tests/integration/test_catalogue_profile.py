"""Ingest with a catalogue profile: lookalike enriches the library's own index in place,
through the real pipeline (Kafka-protocol broker, Elasticsearch-API server, matcher)."""

from __future__ import annotations

import contextlib
import io
import json
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable
from pathlib import Path
from typing import Any

import pytest
from elasticsearch import AsyncElasticsearch

from lookalike_ingest.backfill import BackfillOptions, backfill
from lookalike_ingest.retry import Backoff, PermanentFailure
from lookalike_ingest.search_writes import NOT_INDEXED, SearchWrite, SearchWrites
from lookalike_ingest.service import init_app as init_ingest
from lookalike_ingest.settings import IngestSettings
from lookalike_shared.kafka import ensure_topics
from lookalike_shared.profile import ProfileError, load_profile
from lookalike_stack.catalogue import publish
from lookalike_stack.library import profile_text
from lookalike_stack.processes import free_port
from tests.fixtures.ingest import outcome_count
from tests.fixtures.library import Library
from tests.fixtures.services import ready_or_failed, run_pipeline, start_app, wait_until

NAMESPACE = "lookalike"


def _ingest_settings(library: Library, root: Path, profile: Path) -> IngestSettings:
    return IngestSettings(
        **library.settings.model_dump(exclude={"catalogue_profile"}),
        catalogue_profile=str(profile),
        bind_host="127.0.0.1",
        ingest_port=free_port(),
        file_root=str(root),
        group_id=f"lookalike-ingest-{uuid.uuid4().hex[:8]}",
        pool_workers=1,
        backoff_base_seconds=0.05,
        backoff_cap_seconds=0.5,
    )


@contextlib.asynccontextmanager
async def _ingest(library: Library, root: Path, profile: Path | None = None) -> AsyncIterator[None]:
    """An ingest worker with the profile, started and ready (or raising why it is not)."""
    await ensure_topics(library.settings)
    settings = _ingest_settings(library, root, profile or library.profile_path)
    app = init_ingest(settings)
    runner = await start_app(app, settings.ingest_port)
    try:
        await ready_or_failed(app, timeout=60)
        yield
    finally:
        await runner.cleanup()


async def _sources(library: Library) -> dict[str, dict[str, Any]]:
    async with AsyncElasticsearch(library.settings.es_url) as es:
        await es.indices.refresh(index=library.alias)
        found = await es.search(index=library.alias, size=100, query={"match_all": {}})
    return {hit["_id"]: hit["_source"] for hit in found["hits"]["hits"]}


async def _wait_for_versions(library: Library, wanted: dict[str, int]) -> dict[str, Any]:
    sources: dict[str, Any] = {}

    async def written() -> bool:
        nonlocal sources
        sources = await _sources(library)
        return all(
            (sources.get(i, {}).get(NAMESPACE) or {}).get("version") == v for i, v in wanted.items()
        )

    await wait_until(written, 60, f"lookalike's fields at versions {wanted}")
    return sources


def _library_part(source: dict[str, Any]) -> dict[str, Any]:
    return {k: v for k, v in source.items() if k != NAMESPACE}


async def test_ingest_adds_its_fields_and_leaves_the_librarys_own_as_they_were(
    library: Library, sample_catalogue: tuple[Path, list[dict[str, Any]]]
) -> None:
    root, catalogue = sample_catalogue
    ids = list(library.documents)
    urls = {c["image_id"]: c["image_url"] for c in catalogue}
    # The library's events carry only what lookalike needs: the rest is in its index.
    events = [{"image_id": i, "version": 1, "image_url": urls[i]} for i in ids]
    async with _ingest(library, root):
        await publish(library.settings, events)
        sources = await _wait_for_versions(library, dict.fromkeys(ids, 1))

    for image_id, written in library.documents.items():
        assert _library_part(sources[image_id]) == written  # every field of theirs, as it was
        own = sources[image_id][NAMESPACE]
        assert own["deleted"] is False
        assert own["width"] > 0 and own["format"] in ("png", "jpeg", "gif")
        assert own["colors"] and len(own["embedding"]) == 512  # 256 int8 in hex
    async with AsyncElasticsearch(library.settings.es_url) as es:
        mapping = await es.indices.get_mapping(index=library.alias)
    (properties,) = [m["mappings"]["properties"] for m in mapping.body.values()]
    assert properties[NAMESPACE]["properties"]["embedding"]["type"] == "dense_vector"
    assert properties["name"] == {"type": "text", "fields": {"raw": {"type": "keyword"}}}


async def test_a_delete_removes_only_lookalikes_fields_and_an_older_event_never_wins(
    library: Library, sample_catalogue: tuple[Path, list[dict[str, Any]]]
) -> None:
    root, catalogue = sample_catalogue
    first, second = list(library.documents)[:2]
    urls = {c["image_id"]: c["image_url"] for c in catalogue}

    async def upsert(version: int, picture: str) -> None:
        event = {"image_id": first, "version": version, "image_url": urls[picture]}
        await publish(library.settings, [event])

    async def ignored(stale_before: float) -> None:
        await wait_until(
            _async(lambda: outcome_count("stale") > stale_before), 60, "the event to be ignored"
        )

    async with _ingest(library, root):
        await upsert(5, first)
        before = (await _wait_for_versions(library, {first: 5}))[first][NAMESPACE]
        # An older version of the same image, with another picture, arrives late: ignored.
        stale = outcome_count("stale")
        await upsert(3, second)
        await ignored(stale)
        assert (await _sources(library))[first][NAMESPACE] == before

        await publish(library.settings, deletes=[{"image_id": first, "version": 6}])
        sources = await _wait_for_versions(library, {first: 6})
        # The library's document stays, with all of its own fields; lookalike's are gone.
        assert _library_part(sources[first]) == library.documents[first]
        own = sources[first][NAMESPACE]
        assert own["deleted"] is True and "embedding" not in own and "colors" not in own
        # An upsert older than the delete does not bring them back.
        stale = outcome_count("stale")
        await upsert(4, first)
        await ignored(stale)
        assert (await _sources(library))[first][NAMESPACE] == own


def _async(check: Callable[[], bool]) -> Callable[[], Awaitable[bool]]:
    async def checked() -> bool:
        return check()

    return checked


BAD_PROFILES = [
    ('year = "created.year"', 'year = "created.yr"', "filters.year names 'created.yr'"),
    ('year = "created.year"', 'year = "name"', "filters.year names 'name', a text field"),
    ('field = "collection"', 'field = "collection_code"', "filters.extra[1].field"),
    ('title = "name"', 'title = "headline"', "card.title names 'headline'"),
    ('namespace = "lookalike"', 'namespace = "collection"', "index.namespace 'collection'"),
    ('"name" = 3', '"name" = "three"', "search.text_fields.name"),
    ('kind = "term"\nlabel = "Licence"', 'kind = "prefix"\nlabel = "Licence"', "kind"),
]


@pytest.mark.parametrize(("written", "changed", "named"), BAD_PROFILES)
async def test_a_profile_that_does_not_fit_the_index_stops_ingest_before_it_writes(
    library: Library,
    sample_catalogue: tuple[Path, list[dict[str, Any]]],
    written: str,
    changed: str,
    named: str,
) -> None:
    root, _ = sample_catalogue
    text = profile_text(library.alias)
    assert written in text
    bad = library.write_profile(text.replace(written, changed, 1), "bad.toml")
    async with AsyncElasticsearch(library.settings.es_url) as es:
        before = (await es.indices.get_mapping(index=library.alias)).body

    with pytest.raises((ProfileError, RuntimeError)) as refused:
        async with _ingest(library, root, bad):
            pass

    assert named in str(refused.value)
    async with AsyncElasticsearch(library.settings.es_url) as es:
        assert (await es.indices.get_mapping(index=library.alias)).body == before  # nothing
    assert _library_part((await _sources(library))[next(iter(library.documents))]) == next(
        iter(library.documents.values())
    )


async def test_a_write_older_than_the_namespace_is_stale_even_when_sent(library: Library) -> None:
    # The batch skips events older than what it read of the index; two writers (or a read
    # made before another worker's write) can still send one. The update itself refuses it.
    profile = load_profile(library.profile_path)
    image_id = next(iter(library.documents))
    async with AsyncElasticsearch(library.settings.es_url) as es:
        writes = SearchWrites(es, library.alias, Backoff(0.01, 0.1), profile)
        newer = {"version": 5, "deleted": False, "colors": ["red"]}
        older = {"version": 3, "deleted": False, "colors": ["blue"]}
        assert await writes.write([SearchWrite(image_id, 5, newer)]) == ["applied"]
        assert await writes.write([SearchWrite(image_id, 3, older)]) == ["stale"]
        assert await writes.write([SearchWrite(image_id, 5, older)]) == ["stale"]
        assert await writes.indexed_versions([image_id, "not-in-the-library"]) == {
            image_id: 5,
            "not-in-the-library": NOT_INDEXED,
        }
        (missing,) = await writes.write([SearchWrite("not-in-the-library", 1, newer)])
    assert isinstance(missing, PermanentFailure) and missing.code == "catalogue_document_missing"
    assert (await _sources(library))[image_id][NAMESPACE] == newer


async def test_a_backfill_puts_the_library_in_and_follows_it_to_the_last_image(
    library: Library, sample_catalogue: tuple[Path, list[dict[str, Any]]], tmp_path: Path
) -> None:
    root, catalogue = sample_catalogue
    settings = library.settings.model_copy(update={"catalogue_profile": str(library.profile_path)})
    urls = {c["image_id"]: c["image_url"] for c in catalogue}
    rows = [{"image_id": i, "version": 1, "image_url": urls[i]} for i in library.documents]
    # One row the library's index has no document for: lookalike does not create theirs.
    rows.append({"image_id": "not-in-the-library", "version": 1, "image_url": rows[0]["image_url"]})
    export = tmp_path / "works.jsonl"
    export.write_text("".join(json.dumps(row) + "\n" for row in rows))

    async with run_pipeline(settings, root) as pipeline:
        options = BackfillOptions(
            follow=True,
            group=pipeline.ingest_group,
            matcher_url=pipeline.matcher_url,
            bar_file=io.StringIO(),
            errors=io.StringIO(),
            follow_timeout=120,
        )
        summary = await backfill(settings, export, tmp_path / "state.sqlite", options)

    follow = summary.follow
    assert follow is not None and follow.finished
    assert (summary.published, follow.indexed, follow.unchanged) == (len(rows), len(rows) - 1, 0)
    assert dict(follow.dead) == {"catalogue_document_missing": 1}
    assert follow.matcher_images == follow.es_images == len(library.documents)
    sources = await _sources(library)
    assert set(sources) == set(library.documents)  # no document of lookalike's making
    assert all(_library_part(sources[i]) == d for i, d in library.documents.items())
