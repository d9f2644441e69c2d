"""The matcher fixes glibc's mmap threshold, unless an operator already chose one, and hands
the free memory a snapshot's table merges leave back to the system."""

from __future__ import annotations

import platform
from pathlib import Path

import pytest

from lookalike_matcher.allocator import fix_mmap_threshold, release_free_memory


def test_an_operators_malloc_mmap_threshold_is_left_alone(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("MALLOC_MMAP_THRESHOLD_", "262144")
    assert fix_mmap_threshold() is False


@pytest.mark.skipif(platform.libc_ver()[0] != "glibc", reason="a glibc setting")
def test_the_threshold_is_set_on_glibc(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("MALLOC_MMAP_THRESHOLD_", raising=False)
    assert fix_mmap_threshold() is True


def _rss_kb() -> int:
    status = Path("/proc/self/status").read_text()
    return int(next(line for line in status.splitlines() if line.startswith("VmRSS:")).split()[1])


@pytest.mark.skipif(platform.libc_ver()[0] != "glibc", reason="a glibc function")
def test_free_memory_held_between_live_blocks_is_given_back() -> None:
    # What a table merge leaves: many blocks freed, a few still live among them, so the
    # heap cannot simply shrink from its top.
    before = _rss_kb()
    blocks = [bytearray(4000) for _ in range(10_000)]  # ~40 MB from malloc, not pymalloc
    taken = _rss_kb() - before
    survivors = blocks[::64]
    del blocks
    held = _rss_kb()
    release_free_memory()
    # Freed but held, glibc keeps nearly all of it; released, most goes back to the system.
    assert held - _rss_kb() > taken / 2
    assert all(len(b) == 4000 for b in survivors)
