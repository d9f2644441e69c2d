"""Fetch an image by URL without letting a URL reach inside our network.

One decision per connection: the host is read the way the HTTP client will use it (yarl's
IDNA and Unicode normalisation, so `127。0。0。1` or `①②⑦.0.0.1` are the loopback address they
become), and every connection the client opens, on every redirect hop, passes through
`guarded_socket` with the address it is about to connect to, IP literals included: loopback,
private, link-local (cloud metadata), multicast and reserved addresses are refused there
unless a trusted network covers them. `file://` is read only where the caller allows it
(ingest, for catalogue URLs; never a stranger's URL) and only below a configured root.
Bodies are capped while streaming, and every request has a deadline.
"""

from __future__ import annotations

import asyncio
import ipaddress
import re
import socket
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Annotated, Any
from urllib.parse import unquote

import aiohttp
from pydantic import Field, field_validator
from pydantic_settings import NoDecode
from yarl import URL

from .config import CommonSettings, split_csv
from .imaging import MAX_IMAGE_BYTES

MAX_REDIRECTS = 5
IPNetwork = ipaddress.IPv4Network | ipaddress.IPv6Network
AddrInfo = tuple[Any, Any, int, str, tuple[Any, ...]]


class FetchError(Exception):
    """`transient` errors are worth retrying (timeouts, 5xx); the rest never will succeed.
    The message is fit for anyone (it names nothing of our disks or network); `detail`
    adds what an operator needs (the path), for logs and dead letters only."""

    def __init__(
        self, code: str, message: str, transient: bool = False, detail: str | None = None
    ) -> None:
        super().__init__(message)
        self.code = code
        self.transient = transient
        self.detail = detail

    def for_operators(self) -> str:
        return f"{self} ({self.detail})" if self.detail else str(self)


class ForbiddenAddress(OSError):
    """Raised by guarded_socket: the connection would reach inside our network."""


@dataclass(frozen=True)
class FetchPolicy:
    file_root: Path | None = None
    allowed_hosts: frozenset[str] = field(default_factory=frozenset)  # empty: any public host
    allow_private_networks: bool = False  # every address allowed (tests, trusted set-ups)
    # Non-public networks allowed all the same (a catalogue's own image server on 10.1.2.0/24).
    trusted_networks: tuple[IPNetwork, ...] = ()
    max_bytes: int = MAX_IMAGE_BYTES
    timeout_seconds: float = 15.0


def address_is_forbidden(address: str, trusted: tuple[IPNetwork, ...] = ()) -> bool:
    ip = ipaddress.ip_address(address.split("%", 1)[0])  # drop an IPv6 zone (fe80::1%eth0)
    if isinstance(ip, ipaddress.IPv6Address) and ip.ipv4_mapped is not None:
        ip = ip.ipv4_mapped
    if any(ip in network for network in trusted):
        return False
    return not ip.is_global or ip.is_multicast


def guarded_socket(trusted: tuple[IPNetwork, ...]) -> Callable[[AddrInfo], socket.socket]:
    """The connector's socket factory: it sees the very address each connection is about to
    use, whatever the URL said and however it was resolved (names, IP literals, redirects)."""

    def make(addr_info: AddrInfo) -> socket.socket:
        family, kind, proto, _, sockaddr = addr_info
        if address_is_forbidden(str(sockaddr[0]), trusted):
            raise ForbiddenAddress(f"the image URL leads to {sockaddr[0]}, inside our network")
        return socket.socket(family, kind, proto)

    return make


# Hosts written as one number, in hex or with parts left out (2130706433, 0x7f.1, 127.1) are
# loopback in disguise to some resolvers; a URL a person means never names a host that way.
_NUMERIC_HOST = re.compile(r"(0x[0-9a-f]*|[0-9]+)(\.(0x[0-9a-f]*|[0-9]+))*\.?")


def parse_image_url(url: str) -> URL:
    """The URL as the HTTP client will read it, or FetchError(url_invalid) naming why not."""
    if any(ch in url for ch in "\x00\r\n\t"):
        raise FetchError("url_invalid", "the image URL contains control characters")
    try:
        parsed = URL(url)
        host = parsed.host  # normalised: IDNA, full-width digits and dots, lower case
    except (ValueError, UnicodeError) as exc:
        raise FetchError("url_invalid", f"the image URL is not valid: {exc}") from None
    scheme = parsed.scheme.lower()
    if scheme not in ("http", "https", "file"):
        raise FetchError("url_forbidden", f"URL scheme {scheme!r} is not allowed")
    if scheme != "file":
        if not host:
            raise FetchError("url_invalid", "the image URL has no host")
        if _NUMERIC_HOST.fullmatch(host) and not _is_ipv4(host.rstrip(".")):
            raise FetchError("url_invalid", f"host {host!r} is not a plain IP address or name")
    return parsed


def _is_ipv4(host: str) -> bool:
    try:
        ipaddress.IPv4Address(host)
    except ValueError:
        return False
    return True


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
            guard = None if self.policy.allow_private_networks else self.policy.trusted_networks
            self._session = aiohttp.ClientSession(
                connector=aiohttp.TCPConnector(
                    limit=64,
                    limit_per_host=16,
                    socket_factory=None if guard is None else guarded_socket(guard),
                ),
                timeout=aiohttp.ClientTimeout(total=self.policy.timeout_seconds),
                headers={"User-Agent": "lookalike-fetcher/0.1"},
            )
        return self._session

    async def fetch(self, url: str, allow_files: bool = True) -> bytes:
        """The body at `url`. `allow_files=False` for URLs a stranger sent: file:// then
        is refused whatever the file root."""
        parsed = parse_image_url(url)
        if parsed.scheme.lower() == "file":
            if not allow_files:
                raise FetchError("url_forbidden", "file:// URLs are not accepted here")
            return await asyncio.to_thread(self._read_file, parsed)
        for _ in range(MAX_REDIRECTS + 1):
            self._check_host(parsed)
            try:
                async with self._client().get(parsed, allow_redirects=False) as resp:
                    if resp.status in (301, 302, 303, 307, 308) and "Location" in resp.headers:
                        parsed = self._next_hop(parsed, resp.headers["Location"])
                        continue
                    self._check_status(resp.status)
                    return await self._read_capped(resp)
            except FetchError:
                raise
            except TimeoutError as exc:
                raise FetchError("fetch_timeout", "timed out fetching the image", True) from exc
            except aiohttp.InvalidURL as exc:
                raise FetchError("url_invalid", f"the image URL is not valid: {exc}") from exc
            except aiohttp.ClientConnectorError as exc:
                if isinstance(exc.os_error, ForbiddenAddress):
                    raise FetchError("url_forbidden", str(exc.os_error)) from None
                raise FetchError(
                    "fetch_unreachable", "cannot connect to the image host", True
                ) from exc
            except aiohttp.ClientError as exc:
                raise FetchError("fetch_failed", f"fetching the image failed: {exc}", True) from exc
        raise FetchError("too_many_redirects", f"more than {MAX_REDIRECTS} redirects")

    @staticmethod
    def _next_hop(current: URL, location: str) -> URL:
        try:
            target = current.join(URL(location))
        except (ValueError, UnicodeError) as exc:
            raise FetchError(
                "url_invalid", f"the image host redirected to a bad URL: {exc}"
            ) from None
        if target.scheme.lower() not in ("http", "https"):
            raise FetchError("url_forbidden", "the image host redirected to a non-HTTP URL")
        return parse_image_url(str(target))

    def _check_host(self, url: URL) -> None:
        """URL rules before any connection: the allow-list, and names that mean this machine.
        Addresses themselves are judged at the connector (guarded_socket)."""
        host = (url.host or "").rstrip(".").lower()
        if self.policy.allowed_hosts and host not in self.policy.allowed_hosts:
            raise FetchError("url_forbidden", f"host {host!r} is not in the allowed hosts")
        if self.policy.allow_private_networks:
            return
        if host == "localhost" or host.endswith(".localhost"):
            raise FetchError("url_forbidden", f"host {host!r} is this machine")
        if _is_ipv4(host) or ":" in host:
            if address_is_forbidden(host, self.policy.trusted_networks):
                raise FetchError("url_forbidden", f"address {host} is inside our network")

    @staticmethod
    def _check_status(status: int) -> None:
        if status == 200:
            return
        if status in (404, 410):
            raise FetchError("fetch_not_found", f"the image host answered {status}")
        if status in (408, 425, 429) or status >= 500:
            raise FetchError("fetch_http_error", f"the image host answered {status}", True)
        raise FetchError("fetch_refused", f"the image host answered {status}")

    async def _read_capped(self, resp: aiohttp.ClientResponse) -> bytes:
        limit = self.policy.max_bytes
        if resp.content_length is not None and resp.content_length > limit:
            raise FetchError(
                "image_too_large", f"the image is {resp.content_length} bytes > {limit}"
            )
        chunks: list[bytes] = []
        size = 0
        async for chunk in resp.content.iter_chunked(65536):
            size += len(chunk)
            if size > limit:
                raise FetchError("image_too_large", f"the image is over {limit} bytes")
            chunks.append(chunk)
        return b"".join(chunks)

    def _read_file(self, url: URL) -> bytes:
        root = self.policy.file_root
        if root is None:
            raise FetchError("url_forbidden", "file:// URLs are off (no file root configured)")
        if url.host not in (None, "", "localhost"):
            raise FetchError("url_forbidden", "a file:// URL must not name a host")
        try:
            path = Path(unquote(url.raw_path)).resolve()
        except (ValueError, OSError) as exc:  # an embedded NUL, a loop of links
            raise FetchError("url_invalid", f"the file path is not valid: {exc}") from None
        where = str(path)
        if not path.is_relative_to(root.resolve()):
            raise FetchError("url_forbidden", "the file is outside the file root", detail=where)
        try:
            size = path.stat().st_size
            if size > self.policy.max_bytes:
                raise FetchError("image_too_large", f"the file is {size} bytes", detail=where)
            return path.read_bytes()
        except FileNotFoundError as exc:
            raise FetchError("fetch_not_found", "the file does not exist", detail=where) from exc
        except IsADirectoryError as exc:
            raise FetchError("fetch_not_found", "the path is a directory", detail=where) from exc
        except OSError as exc:
            message = f"the file cannot be read: {exc.strerror}"
            raise FetchError("fetch_refused", message, detail=where) from exc


class FetchSettings(CommonSettings):
    """The LOOKALIKE_* settings of every service that fetches images by URL."""

    file_root: str | None = Field(None, description="file:// image URLs are read only below this.")
    allowed_hosts: Annotated[list[str], NoDecode] = Field(
        default_factory=list, description="Image hosts allowed; empty allows any public host."
    )
    allow_private_networks: bool = Field(
        False,
        description="Let image URLs reach loopback/private addresses (trusted setups only).",
    )
    trusted_networks: Annotated[list[str], NoDecode] = Field(
        default_factory=list,
        description="Non-public networks image URLs may reach all the same, comma-separated "
        "CIDR (a catalogue's own image server, e.g. 10.1.2.0/24).",
    )
    fetch_timeout_seconds: float = Field(15.0, description="Deadline for fetching one image.")

    _split_hosts = field_validator("allowed_hosts", "trusted_networks", mode="before")(split_csv)

    def fetch_policy(self, max_bytes: int) -> FetchPolicy:
        """The policy these settings describe, reading at most `max_bytes` an image."""
        return FetchPolicy(
            file_root=Path(self.file_root) if self.file_root else None,
            allowed_hosts=frozenset(h.lower().rstrip(".") for h in self.allowed_hosts),
            allow_private_networks=self.allow_private_networks,
            trusted_networks=tuple(
                ipaddress.ip_network(n, strict=False) for n in self.trusted_networks
            ),
            timeout_seconds=self.fetch_timeout_seconds,
            max_bytes=max_bytes,
        )
