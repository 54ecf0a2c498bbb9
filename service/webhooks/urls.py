"""Which webhook URLs the service may call (SSRF protection).

Outside development and test (`APP_ENV=production`) a URL must be `https`, carry no user
info, and its host must resolve ONLY to public addresses: no loopback, private, link-local
(cloud metadata endpoints such as 169.254.169.254 live there), shared, reserved, multicast or
unspecified ones. It is checked when a subscription is saved and again before every delivery,
because DNS can change after the check. A name that resolves to a public address at the
check and a private one at the connection (DNS rebinding within a second) is not covered;
an egress proxy that enforces the same rule is the complete defence. In development and test
`http` and loopback are allowed, so a local receiver can be subscribed.
"""

from __future__ import annotations

import asyncio
import ipaddress
import socket
from urllib.parse import urlsplit


class BlockedUrl(ValueError):
    """A URL the service refuses to call, with the reason."""


def _public(address: str) -> bool:
    ip = ipaddress.ip_address(address.split("%", 1)[0])
    if isinstance(ip, ipaddress.IPv6Address) and ip.ipv4_mapped is not None:
        ip = ip.ipv4_mapped
    return ip.is_global and not ip.is_multicast


async def check_url(url: str, *, strict: bool) -> None:
    """Raise `BlockedUrl` unless `url` may be called (`strict`: the production rule)."""
    try:
        parts = urlsplit(url)
        port = parts.port
    except ValueError as exc:
        raise BlockedUrl(f"not a valid URL: {exc}") from None
    if parts.scheme not in ("https", "http") or not parts.hostname:
        raise BlockedUrl("the URL must be http(s) with a host")
    if parts.username or parts.password:
        raise BlockedUrl("the URL must not carry credentials")
    if not strict:
        return
    if parts.scheme != "https":
        raise BlockedUrl("the URL must be https")
    try:
        infos = await asyncio.get_running_loop().getaddrinfo(
            parts.hostname, port or 443, type=socket.SOCK_STREAM
        )
    except OSError:
        raise BlockedUrl(f"the host {parts.hostname} does not resolve") from None
    addresses = {str(info[4][0]) for info in infos}
    blocked = sorted(a for a in addresses if not _public(a))
    if not addresses or blocked:
        raise BlockedUrl(f"the host resolves to a non-public address ({', '.join(blocked)})")


__all__ = ["BlockedUrl", "check_url"]
