"""Guard against server-side request forgery: user-supplied URLs may only reach the public internet.

Every address a host name resolves to must be global unicast: loopback, RFC 1918,
link-local (169.254.169.254 included), CGNAT, ULA, multicast, unspecified and reserved
ranges are refused, whatever the spelling (``2130706433``, ``0177.0.0.1``, ``0x7f.1``,
``[::ffff:127.0.0.1]`` all resolve to 127.0.0.1 and are refused).
"""

import ipaddress
import socket
from urllib.parse import urlsplit

from django.conf import settings

ALLOWED_SCHEMES = ("http", "https")


class UnsafeURL(ValueError):
    pass


def is_public_address(address: str) -> bool:
    """Global unicast, or inside a network the operator allowed (``SSRF_ALLOWED_NETWORKS``)."""
    ip = ipaddress.ip_address(address.split("%", 1)[0])
    if isinstance(ip, ipaddress.IPv6Address) and ip.ipv4_mapped is not None:
        ip = ip.ipv4_mapped
    if any(ip in ipaddress.ip_network(network) for network in settings.SSRF_ALLOWED_NETWORKS):
        return True
    return ip.is_global and not ip.is_multicast


def resolve(host: str, port: int) -> list[str]:
    """Every address ``host`` resolves to (numeric spellings included); [] if it does not resolve."""
    try:
        infos = socket.getaddrinfo(host, port, proto=socket.IPPROTO_TCP)
    except (socket.gaierror, UnicodeError):
        return []
    return sorted({info[4][0] for info in infos})


def check_url(url: str, *, require_resolvable: bool = False) -> list[str]:
    """Raises ``UnsafeURL`` unless ``url`` is http(s) to a public host; returns its addresses.

    A host that does not resolve passes unless ``require_resolvable`` (at submission the
    fetch happens later, in the worker, which checks again and connects to a checked address).
    """
    try:
        parts = urlsplit(url)
        port = parts.port or (443 if parts.scheme == "https" else 80)
    except ValueError as exc:
        raise UnsafeURL(f"Not a valid URL: {exc}.") from None
    if parts.scheme not in ALLOWED_SCHEMES:
        raise UnsafeURL("Only http and https URLs are allowed.")
    if not parts.hostname:
        raise UnsafeURL("The URL has no host.")
    if parts.username or parts.password:
        raise UnsafeURL("URLs with credentials are not allowed.")
    addresses = resolve(parts.hostname, port)
    if not addresses and require_resolvable:
        raise UnsafeURL(f"The host {parts.hostname!r} does not resolve.")
    private = [address for address in addresses if not is_public_address(address)]
    if private:
        raise UnsafeURL(f"The host {parts.hostname!r} resolves to a non-public address ({private[0]}).")
    return addresses
