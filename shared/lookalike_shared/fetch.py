"""Fetch an image by URL without letting a URL reach inside our network.

`file://` is served only below a configured root. `http(s)://` hosts are checked after DNS
resolution and on every redirect hop: loopback, private, link-local (cloud metadata),
multicast and reserved addresses are refused unless explicitly allowed (tests, a catalogue
on the same host). Bodies are capped while streaming, and every request has a deadline.
"""

from __future__ import annotations

import asyncio
import ipaddress
import socket
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import unquote, urljoin, urlsplit

import aiohttp
from aiohttp.abc import AbstractResolver, ResolveResult
from aiohttp.resolver import DefaultResolver

from .imaging import MAX_IMAGE_BYTES

MAX_REDIRECTS = 5


class FetchError(Exception):
    """`transient` errors are worth retrying (timeouts, 5xx); the rest never will succeed."""

    def __init__(self, code: str, message: str, transient: bool = False) -> None:
        super().__init__(message)
        self.code = code
        self.transient = transient


@dataclass(frozen=True)
class FetchPolicy:
    file_root: Path | None = None
    allowed_hosts: frozenset[str] = field(default_factory=frozenset)  # empty: any public host
    allow_private_networks: bool = False
    max_bytes: int = MAX_IMAGE_BYTES
    timeout_seconds: float = 15.0


def address_is_forbidden(address: str) -> bool:
    ip = ipaddress.ip_address(address)
    if isinstance(ip, ipaddress.IPv6Address) and ip.ipv4_mapped is not None:
        ip = ip.ipv4_mapped
    return not ip.is_global or ip.is_multicast


class _PublicOnlyResolver(AbstractResolver):
    """Resolves like aiohttp, then refuses names that point at non-public addresses, so a
    public-looking name cannot smuggle a request to 127.0.0.1 or 169.254.169.254."""

    def __init__(self) -> None:
        self._inner = DefaultResolver()

    async def resolve(
        self, host: str, port: int = 0, family: socket.AddressFamily = socket.AF_INET
    ) -> list[ResolveResult]:
        results = await self._inner.resolve(host, port, family)
        for result in results:
            if address_is_forbidden(result["host"]):
                raise FetchError(
                    "url_forbidden", f"{host} resolves to {result['host']}, inside our network"
                )
        return results

    async def close(self) -> None:
        await self._inner.close()


class ImageFetcher:
    """One HTTP session per process; `fetch(url)` returns the body bytes or raises FetchError."""

    def __init__(self, policy: FetchPolicy) -> None:
        self.policy = policy
        self._session: aiohttp.ClientSession | None = None

    async def __aenter__(self) -> ImageFetcher:
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.close()

    async def close(self) -> None:
        if self._session is not None:
            await self._session.close()
            self._session = None

    def _client(self) -> aiohttp.ClientSession:
        if self._session is None:
            resolver: AbstractResolver = (
                DefaultResolver() if self.policy.allow_private_networks else _PublicOnlyResolver()
            )
            self._session = aiohttp.ClientSession(
                connector=aiohttp.TCPConnector(resolver=resolver, limit=64, limit_per_host=16),
                timeout=aiohttp.ClientTimeout(total=self.policy.timeout_seconds),
                headers={"User-Agent": "lookalike-fetcher/0.1"},
            )
        return self._session

    async def fetch(self, url: str) -> bytes:
        scheme = urlsplit(url).scheme.lower()
        if scheme == "file":
            return await asyncio.to_thread(self._read_file, url)
        if scheme not in ("http", "https"):
            raise FetchError("url_forbidden", f"URL scheme {scheme!r} is not allowed")
        for _ in range(MAX_REDIRECTS + 1):
            self._check_http_url(url)
            try:
                async with self._client().get(url, allow_redirects=False) as resp:
                    if resp.status in (301, 302, 303, 307, 308) and "Location" in resp.headers:
                        url = urljoin(url, resp.headers["Location"])
                        continue
                    self._check_status(resp.status, url)
                    return await self._read_capped(resp)
            except FetchError:
                raise
            except TimeoutError as exc:
                raise FetchError("fetch_timeout", f"timed out fetching {url}", True) from exc
            except aiohttp.InvalidURL as exc:
                # Odd spellings of addresses (2130706433, 127.1) land here: never retry them.
                raise FetchError("url_forbidden", f"URL {url!r} is not valid: {exc}") from exc
            except aiohttp.ClientConnectorError as exc:
                if isinstance(exc.__cause__, FetchError):
                    raise exc.__cause__ from None
                raise FetchError("fetch_unreachable", f"cannot connect: {exc}", True) from exc
            except aiohttp.ClientError as exc:
                raise FetchError("fetch_failed", f"fetching {url} failed: {exc}", True) from exc
        raise FetchError("too_many_redirects", f"more than {MAX_REDIRECTS} redirects")

    def _check_http_url(self, url: str) -> None:
        parts = urlsplit(url)
        host = (parts.hostname or "").lower()
        if not host:
            raise FetchError("url_forbidden", f"URL {url!r} has no host")
        if self.policy.allowed_hosts and host not in self.policy.allowed_hosts:
            raise FetchError("url_forbidden", f"host {host!r} is not in the allowed hosts")
        if self.policy.allow_private_networks:
            return
        try:
            literal = ipaddress.ip_address(host)
        except ValueError:
            if host == "localhost" or host.endswith(".localhost"):
                raise FetchError("url_forbidden", f"host {host!r} is loopback") from None
            return  # a name: the resolver checks its addresses at connect time
        if address_is_forbidden(str(literal)):
            raise FetchError("url_forbidden", f"address {host} is inside our network")

    @staticmethod
    def _check_status(status: int, url: str) -> None:
        if status == 200:
            return
        if status in (404, 410):
            raise FetchError("fetch_not_found", f"{url} answered {status}")
        if status in (408, 425, 429) or status >= 500:
            raise FetchError("fetch_http_error", f"{url} answered {status}", transient=True)
        raise FetchError("fetch_refused", f"{url} answered {status}")

    async def _read_capped(self, resp: aiohttp.ClientResponse) -> bytes:
        limit = self.policy.max_bytes
        if resp.content_length is not None and resp.content_length > limit:
            raise FetchError("image_too_large", f"body is {resp.content_length} bytes > {limit}")
        chunks: list[bytes] = []
        size = 0
        async for chunk in resp.content.iter_chunked(65536):
            size += len(chunk)
            if size > limit:
                raise FetchError("image_too_large", f"body is over {limit} bytes")
            chunks.append(chunk)
        return b"".join(chunks)

    def _read_file(self, url: str) -> bytes:
        root = self.policy.file_root
        if root is None:
            raise FetchError("url_forbidden", "file:// URLs are off (no file root configured)")
        parts = urlsplit(url)
        if parts.netloc not in ("", "localhost"):
            raise FetchError("url_forbidden", f"file URL names a host: {parts.netloc!r}")
        path = Path(unquote(parts.path)).resolve()
        if not path.is_relative_to(root.resolve()):
            raise FetchError("url_forbidden", f"{path} is outside the file root {root}")
        try:
            size = path.stat().st_size
            if size > self.policy.max_bytes:
                raise FetchError("image_too_large", f"{path} is {size} bytes")
            return path.read_bytes()
        except FileNotFoundError as exc:
            raise FetchError("fetch_not_found", f"{path} does not exist") from exc
        except IsADirectoryError as exc:
            raise FetchError("fetch_not_found", f"{path} is a directory") from exc
        except PermissionError as exc:
            raise FetchError("fetch_refused", f"{path} is not readable") from exc


def policy_from(settings: Any) -> FetchPolicy:
    """Build the policy from any settings object with the LOOKALIKE_* fetch fields."""
    root = getattr(settings, "file_root", None)
    return FetchPolicy(
        file_root=Path(root) if root else None,
        allowed_hosts=frozenset(h.lower() for h in getattr(settings, "allowed_hosts", []) or []),
        allow_private_networks=bool(getattr(settings, "allow_private_networks", False)),
        timeout_seconds=float(getattr(settings, "fetch_timeout_seconds", 15.0)),
        max_bytes=int(getattr(settings, "max_image_bytes", MAX_IMAGE_BYTES)),
    )
