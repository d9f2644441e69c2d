from __future__ import annotations

import io
import json
import time
from pathlib import Path
from typing import Any

import pytest

from lookalike_ingest.backfill import BackfillOptions, backfill, main
from lookalike_shared.config import CommonSettings
from tests.fixtures.embedded_metadata import exif_block, write_jpeg, xmp_packet
from tests.fixtures.ingest import read_topic


def write_jsonl(path: Path, rows: list[dict[str, Any]]) -> None:
    path.write_text("".join(json.dumps(row) + "\n" for row in rows))


async def published_ids(settings: CommonSettings) -> list[str]:
    records = await read_topic(settings.kafka_bootstrap, settings.catalogue_topic)
    return sorted(json.loads(r.value)["data"]["image_id"] for r in records)


async def test_second_run_publishes_only_what_changed(
    lookalike_settings: CommonSettings,
    sample_catalogue: tuple[Path, list[dict[str, Any]]],
    tmp_path: Path,
) -> None:
    _, catalogue = sample_catalogue
    export = tmp_path / "export.jsonl"
    state = tmp_path / "state.sqlite"
    rows = catalogue[:3]
    write_jsonl(export, [*rows, {"image_id": "no-url", "version": 1}])
    errors = io.StringIO()
    options = BackfillOptions(progress=False, errors=errors)

    first = await backfill(lookalike_settings, export, state, options)
    assert (first.published, first.unchanged, first.invalid) == (3, 0, 1)
    assert "line 4" in errors.getvalue() and "image_url" in errors.getvalue()

    again = await backfill(lookalike_settings, export, state, options)
    assert (again.published, again.unchanged) == (0, 3)

    write_jsonl(export, [rows[0], rows[1], {**rows[2], "version": 2, "title": "Retitled"}])
    changed = await backfill(lookalike_settings, export, state, options)
    assert (changed.published, changed.unchanged) == (1, 2)

    ids = [row["image_id"] for row in rows]
    assert await published_ids(lookalike_settings) == sorted([*ids, ids[2]])


async def test_csv_export_and_image_directory_become_upsert_events(
    lookalike_settings: CommonSettings, tmp_path: Path
) -> None:
    export = tmp_path / "export.csv"
    export.write_text(
        "image_id,version,image_url,title,creator,year,tags\n"
        "csv-1,3,https://cdn.example/1.jpg,Water Lilies,Claude Monet,1906,impressionism;water\n"
    )
    folder = tmp_path / "photos" / "box 1"
    folder.mkdir(parents=True)
    (folder / "harbour_at_dawn.jpg").write_bytes(b"\xff\xd8")
    (folder / "notes.txt").write_text("not an image")

    quiet = BackfillOptions(progress=False)
    csv_run = await backfill(lookalike_settings, export, tmp_path / "a.sqlite", quiet)
    dir_run = await backfill(lookalike_settings, tmp_path / "photos", tmp_path / "b.sqlite", quiet)
    assert (csv_run.published, dir_run.published) == (1, 1)
    records = await read_topic(
        lookalike_settings.kafka_bootstrap, lookalike_settings.catalogue_topic
    )
    events = {json.loads(r.value)["data"]["image_id"]: json.loads(r.value) for r in records}
    assert events["csv-1"]["data"]["tags"] == ["impressionism", "water"]
    assert events["csv-1"]["data"]["year"] == 1906
    from_dir = events["box_1-harbour_at_dawn"]
    assert from_dir["type"] == "catalogue.image.upserted"
    assert from_dir["data"]["image_url"].startswith("file://")
    assert from_dir["data"]["title"] == "harbour at dawn"


def test_backfill_help_explains_sources_and_options(capsys: Any) -> None:
    with pytest.raises(SystemExit) as exited:
        main(["--help"])
    assert exited.value.code == 0
    out = capsys.readouterr().out
    for text in (
        "JSON Lines",
        "directory of images",
        "--db URL",
        "--map FIELD=COLUMN",
        "--no-follow",
        "--matcher URL",
        "--rate",
        "--state",
        "resumes",
    ):
        assert text in out


async def test_a_folder_backfill_takes_each_files_own_metadata_and_counts_first(
    lookalike_settings: CommonSettings, tmp_path: Path
) -> None:
    folder = tmp_path / "archive"
    folder.mkdir()
    write_jpeg(
        folder / "IMG_0001.jpg",
        xmp=xmp_packet(
            title="Nighthawks", creator=["Edward Hopper"], subjects=["diner"], date="1942"
        ),
    )
    write_jpeg(
        folder / "IMG_0002.jpg",
        iptc=[(5, "Migrant Mother"), (80, "Dorothea Lange"), (116, "Public domain")],
        seed=1,
    )
    write_jpeg(folder / "harbour_at_dawn.jpg", exif=exif_block(artist="Anonymous"), seed=2)
    bars = io.StringIO()
    options = BackfillOptions(bar_file=bars)
    run = await backfill(lookalike_settings, folder, tmp_path / "state.sqlite", options)
    assert (run.total, run.published) == (3, 3)
    assert "3/3" in bars.getvalue()  # counted before publishing: a bar with a total

    records = await read_topic(
        lookalike_settings.kafka_bootstrap, lookalike_settings.catalogue_topic
    )
    data = {json.loads(r.value)["data"]["image_id"]: json.loads(r.value)["data"] for r in records}
    hopper = data["IMG_0001"]
    assert (hopper["title"], hopper["creator"], hopper["year"]) == (
        "Nighthawks",
        "Edward Hopper",
        1942,
    )
    assert hopper["tags"] == ["diner"]
    lange = data["IMG_0002"]
    assert (lange["title"], lange["creator"], lange["rights"]) == (
        "Migrant Mother",
        "Dorothea Lange",
        "Public domain",
    )
    fallback = data["harbour_at_dawn"]
    assert (fallback["title"], fallback["creator"]) == ("harbour at dawn", "Anonymous")


async def test_rate_keeps_a_backfill_to_that_many_events_a_second(
    lookalike_settings: CommonSettings,
    sample_catalogue: tuple[Path, list[dict[str, Any]]],
    tmp_path: Path,
) -> None:
    """`--rate` protects a catalogue's image host: 40 events at 20 a second take at least
    the 1.95 s that rate allows (the first goes at once), and every one is published."""
    _, catalogue = sample_catalogue
    export = tmp_path / "export.jsonl"
    rows = [{**catalogue[n % len(catalogue)], "image_id": f"rated-{n:03d}"} for n in range(40)]
    write_jsonl(export, rows)
    options = BackfillOptions(progress=False, errors=io.StringIO(), rate=20.0)

    started = time.monotonic()
    summary = await backfill(lookalike_settings, export, tmp_path / "state.sqlite", options)
    elapsed = time.monotonic() - started

    assert summary.published == 40
    assert elapsed >= 39 / 20
    assert await published_ids(lookalike_settings) == sorted(r["image_id"] for r in rows)
