"""Scatter a search to every matcher shard and merge their answers into one ranking."""

from __future__ import annotations

import asyncio
import logging

import aiohttp

from lookalike_shared.contracts import (
    CompareSide,
    Comparison,
    Fingerprint,
    MatcherCompareRequest,
    MatcherMatch,
    MatcherSearchRequest,
    MatcherSearchResponse,
)

log = logging.getLogger(__name__)


class MatcherUnavailable(Exception):
    pass


class NotHeld(Exception):
    """A shard does not hold the catalogue image searched by id."""


class MatcherClient:
    def __init__(self, session: aiohttp.ClientSession, urls: list[str], timeout: float) -> None:
        self.session = session
        self.urls = [u.rstrip("/") for u in urls]
        self.timeout = aiohttp.ClientTimeout(total=timeout)

    async def search(
        self, fingerprint: Fingerprint, limit: int
    ) -> tuple[list[MatcherMatch], list[str]]:
        """Merged matches, and a warning when some shard did not answer (partial results).
        The warning counts the shards; their addresses and errors go to the log only."""
        body = MatcherSearchRequest(fingerprint=fingerprint, limit=limit).model_dump_json()
        return await self._scatter(self.urls, body, limit)

    async def search_by_id(self, image_id: str, limit: int) -> tuple[list[MatcherMatch], list[str]]:
        """Matches of a catalogue image, from the matcher's own entry for it: the shard that
        holds it searches with that entry and returns the query it built, with which the
        other shards are then searched (one round trip when there is one shard)."""
        body = MatcherSearchRequest(image_id=image_id, limit=limit).model_dump_json()
        answers = await asyncio.gather(
            *(self._one(url, body) for url in self.urls), return_exceptions=True
        )
        holder = next(
            (a for a in answers if isinstance(a, MatcherSearchResponse) and a.query), None
        )
        rest = [url for url, a in zip(self.urls, answers, strict=True) if isinstance(a, NotHeld)]
        if holder is None or holder.query is None:
            failed = [a for a in answers if not isinstance(a, NotHeld)]
            if failed:
                raise MatcherUnavailable("; ".join(str(a) for a in failed))
            return [], []  # no shard holds it (yet): no duplicates to show
        matches, warnings = list(holder.matches), list[str]()
        if rest:
            body = MatcherSearchRequest(fingerprint=holder.query, limit=limit).model_dump_json()
            more, warnings = await self._scatter(rest, body, limit)
            matches += more
        merged = {m.image_id: m for m in sorted(matches, key=lambda m: (m.version, m.score))}
        ranked = sorted(merged.values(), key=lambda m: (-m.score, m.image_id))
        return ranked[:limit], warnings

    async def compare(self, a: Fingerprint, b: Fingerprint) -> Comparison:
        """The verdict on two fingerprints. Any shard can judge a pair it is sent whole:
        the first that answers does."""
        body = MatcherCompareRequest(
            a=CompareSide(fingerprint=a), b=CompareSide(fingerprint=b)
        ).model_dump_json()
        failures = []
        for url in self.urls:
            try:
                raw = await self._post(f"{url}/v1/compare", body)
                return Comparison.model_validate_json(raw)
            except MatcherUnavailable as exc:
                log.warning("matcher shard unavailable", extra={"url": url, "error": str(exc)})
                failures.append(f"{url}: {exc}")
        raise MatcherUnavailable("; ".join(failures))

    async def _scatter(
        self, urls: list[str], body: str, limit: int
    ) -> tuple[list[MatcherMatch], list[str]]:
        answers = await asyncio.gather(
            *(self._one(url, body) for url in urls), return_exceptions=True
        )
        merged: dict[str, MatcherMatch] = {}
        failures = []
        for url, answer in zip(urls, answers, strict=True):
            if isinstance(answer, BaseException):
                if isinstance(answer, asyncio.CancelledError):
                    raise answer
                log.warning("matcher shard unavailable", extra={"url": url, "error": str(answer)})
                failures.append(f"{url}: {answer}")
                continue
            for match in answer.matches:
                held = merged.get(match.image_id)
                # Replicas may both hold an image: keep the newest version's best score.
                if held is None or (match.version, match.score) > (held.version, held.score):
                    merged[match.image_id] = match
        if len(failures) == len(urls):
            raise MatcherUnavailable("; ".join(failures))
        warnings = []
        if failures:
            warnings.append(
                f"{len(failures)} of {len(urls)} matcher shards did not answer; "
                "some duplicates may be missing"
            )
        ranked = sorted(merged.values(), key=lambda m: (-m.score, m.image_id))
        return ranked[:limit], warnings

    async def _one(self, url: str, body: str) -> MatcherSearchResponse:
        return MatcherSearchResponse.model_validate_json(await self._post(f"{url}/v1/search", body))

    async def _post(self, url: str, body: str) -> bytes:
        """A JSON POST's 200 body; NotHeld for a 404, MatcherUnavailable for anything else."""
        try:
            async with self.session.post(
                url, data=body, headers={"Content-Type": "application/json"}, timeout=self.timeout
            ) as resp:
                if resp.status == 404:
                    raise NotHeld(url)
                if resp.status != 200:
                    raise MatcherUnavailable(f"HTTP {resp.status}: {(await resp.text())[:200]}")
                return await resp.read()
        except TimeoutError as exc:
            raise MatcherUnavailable(f"no answer within {self.timeout.total}s") from exc
        except aiohttp.ClientError as exc:
            raise MatcherUnavailable(str(exc) or type(exc).__name__) from exc
