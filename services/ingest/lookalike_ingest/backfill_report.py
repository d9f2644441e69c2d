"""The closing summary of a backfill, for people: what went in, what did not, what to do."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from .backfill import Summary


def report(summary: Summary, state: Path) -> str:
    """The closing summary, for people: what went in, what did not and what to do."""
    lines = []
    if summary.resumed_after is not None:
        lines.append(f"resumed after image id {summary.resumed_after!r} (the last one published)")
    rate = summary.published / summary.publish_seconds if summary.publish_seconds else 0.0
    lines.append(
        f"published {summary.published}, unchanged {summary.unchanged}, "
        f"invalid {summary.invalid} in {summary.publish_seconds:.1f}s "
        f"({rate:.0f} rows/s published)"
    )
    if summary.error:
        lines.append(f"stopped: {summary.error}")
    if summary.follow is not None:
        lines.extend(_follow_report(summary))
    elif summary.interrupted:
        lines.append("interrupted: run the same command again to resume")
    lines.append(f"state in {state}")
    return "\n".join(lines)


def _follow_report(summary: Summary) -> list[str]:
    follow = summary.follow
    assert follow is not None
    elapsed = summary.publish_seconds + follow.seconds
    into_index = follow.indexed + follow.unchanged
    rate = into_index / elapsed if elapsed else 0.0
    dead = sum(follow.dead.values())
    lines = [
        f"indexed {follow.indexed}, unchanged {follow.unchanged}, dead-lettered {dead}"
        + (f", missing {follow.missing}" if follow.missing else "")
        + f" in {elapsed:.1f}s ({rate:.0f} rows/s indexed)"
    ]
    if follow.unchanged:
        lines.append(
            "  unchanged: Elasticsearch already held that version or a newer one "
            "(a changed image needs a higher version)"
        )
    if follow.missing:
        lines.append("  missing: done, but no longer in Elasticsearch (deleted since)")
    for reason, count in follow.dead.most_common():
        examples = ", ".join(follow.examples.get(reason, []))
        message = follow.messages.get(reason, "")
        lines.append(f"  dead-lettered {reason}: {count}, e.g. {examples}: {message[:160]}")
        lines.append(
            f"    replay once fixed: python -m lookalike_ingest.replay_dlq --reason {reason}"
        )
    if follow.matcher_images is not None:
        lines.append(
            f"searchable in the matcher: {follow.matcher_images} images "
            f"(Elasticsearch holds {follow.es_images})"
        )
    if not follow.finished:
        why = "timed out" if summary.timed_out else "stopped following"
        lines.append(
            f"{why} with {follow.pending} events still on their way; what is known is kept: "
            "run the same command again to follow them to the end (nothing is published twice)"
        )
    return lines
