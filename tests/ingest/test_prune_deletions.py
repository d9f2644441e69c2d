"""Old deletion markers can be pruned, and only they: live images stay."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from lookalike_ingest.prune_deletions import prune
from lookalike_stack.catalogue import publish
from tests.fixtures.ingest import HandFedBatches, deletion_markers, es_ids


async def test_prune_removes_markers_older_than_asked_and_nothing_else(
    hand_fed_batches: HandFedBatches, sample_catalogue: tuple[Path, list[dict[str, Any]]]
) -> None:
    _, catalogue = sample_catalogue
    settings = hand_fed_batches.settings
    await publish(
        settings,
        [{**catalogue[0], "image_id": "stays", "version": 1}],
        deletes=[{"image_id": "went", "version": 4}],
    )
    await hand_fed_batches.apply_new()
    assert deletion_markers(settings) == {"went": 4}

    assert await prune(settings, older_than_days=1) == 0  # the delete is minutes old
    assert await prune(settings, older_than_days=0, dry_run=True) == 1
    assert deletion_markers(settings) == {"went": 4}

    assert await prune(settings, older_than_days=0) == 1
    assert deletion_markers(settings) == {}
    assert es_ids(settings) == {"stays": 1}
