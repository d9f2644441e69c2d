"""Small JPEG previews of catalogue images for the search page's cards."""

from __future__ import annotations

import io
from collections import OrderedDict

from PIL import Image

from lookalike_shared.imaging import ImageRejected, decode_image
from lookalike_shared.pool import WorkerPool

THUMBNAIL_SIDE = 360
CACHE_ENTRIES = 1024  # about 30 KB each: a few tens of MB at most


def render_thumbnail(data: bytes, side: int = THUMBNAIL_SIDE) -> bytes | tuple[str, str]:
    """Runs in the process pool; returns JPEG bytes or (code, message) on bad images."""
    try:
        decoded = decode_image(data, decode_side=side)
    except ImageRejected as exc:
        return (exc.code, str(exc))
    image = decoded.image
    image.thumbnail((side, side), Image.Resampling.LANCZOS)
    out = io.BytesIO()
    image.save(out, "JPEG", quality=82, optimize=True)
    return out.getvalue()


class ThumbnailCache:
    def __init__(self, pool: WorkerPool) -> None:
        self.pool = pool
        self._cache: OrderedDict[tuple[str, int], bytes] = OrderedDict()

    def get(self, image_id: str, version: int) -> bytes | None:
        key = (image_id, version)
        if key in self._cache:
            self._cache.move_to_end(key)
            return self._cache[key]
        return None

    async def render(self, image_id: str, version: int, data: bytes) -> bytes:
        # PoolUnavailable (no worker can run) goes up: the route answers 503.
        result = await self.pool.run(render_thumbnail, data)
        if isinstance(result, tuple):
            raise ImageRejected(*result)
        self._cache[(image_id, version)] = result
        while len(self._cache) > CACHE_ENTRIES:
            self._cache.popitem(last=False)
        return result
