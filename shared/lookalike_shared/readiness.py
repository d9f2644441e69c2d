"""Whether a service is ready, and if not, why: one reason per part that is not.

    readiness.set("replay", "INDEX-CATCHING-UP") ... readiness.clear("replay")
    /readyz: 200 when no part has a reason, else 503 with every reason, in the order the
    parts first spoke

Each part of a service (its replay, its consumer, its process pool) says for itself whether
it is ready; nothing asks a part in any other way.
"""

from __future__ import annotations

import asyncio


class Readiness:
    def __init__(self) -> None:
        self._reasons: dict[str, str | None] = {}  # part -> why it is not ready; None: it is
        self._ready = asyncio.Event()
        self._ready.set()

    def set(self, part: str, reason: str) -> None:
        """`part` is not ready, because `reason` (short, upper case: "POOL-BROKEN")."""
        self._reasons[part] = reason
        self._ready.clear()

    def clear(self, part: str) -> None:
        """`part` is ready."""
        self._reasons[part] = None
        if not self.reasons:
            self._ready.set()

    def reason(self, part: str) -> str | None:
        """Why `part` is not ready; None when it is (or never said)."""
        return self._reasons.get(part)

    @property
    def reasons(self) -> list[str]:
        """Every part's reason for not being ready; empty when the service is ready."""
        return [reason for reason in self._reasons.values() if reason is not None]

    @property
    def ready(self) -> bool:
        return not self.reasons

    async def wait_ready(self) -> None:
        """Return once no part has a reason (at once if none has)."""
        await self._ready.wait()
