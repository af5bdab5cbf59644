"""Guard against server-side request forgery: user-supplied URLs may only reach the public internet.

Every address a host name resolves to must be global unicast: loopback, RFC 1918,
link-local (169.254.169.254 included), CGNAT, ULA, multicast, unspecified and reserved
ranges are refused, whatever the spelling (``2130706433``, ``0177.0.0.1``, ``0x7f.1``,
``[::ffff:127.0.0.1]`` all resolve to 127.0.0.1 and are refused). An IPv6 address that
carries an IPv4 address (mapped, IPv4-compatible, IPv4-translated, NAT64 ``64:ff9b::/96``,
6to4, Teredo) may be delivered to that IPv4 address by the network: both must be public.

``pinned_request`` sends a request to a checked URL, connected to the address that was checked
(a second DNS answer cannot point it elsewhere), never following redirects: the fetch stage
and webhook deliveries go out through it. Webhook deliveries keep their connections
(``reuse=True``): a per-process cache of pools keyed by the address just checked, never by name
alone, so the URL is still checked on every request and a DNS change moves to a new connection.
"""

import ipaddress
import socket
import threading
from collections import OrderedDict
from urllib.parse import urlsplit

import certifi
import urllib3
from django.conf import settings

ALLOWED_SCHEMES = ("http", "https")


class UnsafeURL(ValueError):
    pass


_IPV4_IN_LOW_32_BITS = (
    ipaddress.ip_network("::/96"),  # IPv4-compatible (deprecated): ::127.0.0.1
    ipaddress.ip_network("::ffff:0:0:0/96"),  # IPv4-translated (SIIT): ::ffff:0:127.0.0.1
    ipaddress.ip_network("64:ff9b::/96"),  # NAT64 well-known prefix: 64:ff9b::127.0.0.1
)
# Not globally reachable (IANA special-purpose registry) but called global by Python 3.11's
# ipaddress. 64:ff9b:1::/48 is NAT64 for local use, its IPv4 placed per the operator's prefix length.
_NOT_GLOBAL = (ipaddress.ip_network("64:ff9b:1::/48"),)


def embedded_ipv4(ip: ipaddress.IPv6Address) -> list[ipaddress.IPv4Address]:
    """The IPv4 addresses an IPv6 address carries, which a translator or tunnel may deliver to."""
    if any(ip in network for network in _IPV4_IN_LOW_32_BITS):
        return [ipaddress.IPv4Address(int(ip) & 0xFFFFFFFF)]
    if ip.sixtofour is not None:  # 2002::/16
        return [ip.sixtofour]
    if ip.teredo is not None:  # 2001::/32: (server, client), the client de-obfuscated
        return list(ip.teredo)
    return []


def is_public_address(address: str) -> bool:
    """Global unicast, or inside a network the operator allowed (``SSRF_ALLOWED_NETWORKS``).

    An IPv4-mapped address is that IPv4 address; any other IPv6 address embedding IPv4
    addresses passes only if it and each of them pass.
    """
    ip = ipaddress.ip_address(address.split("%", 1)[0])
    if isinstance(ip, ipaddress.IPv4Address):
        return _is_public(ip)
    if ip.ipv4_mapped is not None:
        return _is_public(ip.ipv4_mapped)
    return _is_public(ip) and all(_is_public(ipv4) for ipv4 in embedded_ipv4(ip))


def _is_public(ip: ipaddress.IPv4Address | ipaddress.IPv6Address) -> bool:
    if any(ip in ipaddress.ip_network(network) for network in settings.SSRF_ALLOWED_NETWORKS):
        return True
    return ip.is_global and not ip.is_multicast and not any(ip in network for network in _NOT_GLOBAL)


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


def pinned_request(method: str, url: str, *, timeout: float, body: bytes | None = None,
                   headers: dict[str, str] | None = None, reuse: bool = False) -> urllib3.BaseHTTPResponse:  # fmt: skip
    """``method url``, after ``check_url`` (``UnsafeURL``), to the first checked address with the
    URL's host name kept for Host, SNI and the certificate check; redirects are returned, not
    followed; the body is not preloaded (``stream``/``read1`` it, then ``release_conn``).
    ``reuse``: the connection comes from, and goes back to, the pool of that address (read the
    answer to its end, or ``close`` it, before ``release_conn``); else it is new and used once.
    Raises urllib3's ``TimeoutError`` / ``HTTPError`` as they come."""
    address = check_url(url, require_resolvable=True)[0]
    parts = urlsplit(url)
    port = parts.port or (443 if parts.scheme == "https" else 80)
    key = (parts.scheme, address, port, parts.hostname)
    pool = _kept_pool(key) if reuse else _new_pool(*key)
    path = parts.path or "/"
    if parts.query:
        path = f"{path}?{parts.query}"
    host = parts.hostname if parts.port is None else f"{parts.hostname}:{parts.port}"
    return pool.urlopen(method, path, body=body, headers={"Host": host, **(headers or {})}, redirect=False,
                        retries=False, timeout=urllib3.Timeout(connect=min(timeout, 10), read=timeout),
                        preload_content=False)  # fmt: skip


KEPT_POOLS = 64  # per process: the least recently used pool beyond this is closed

_kept_pools: OrderedDict[tuple, urllib3.HTTPConnectionPool] = OrderedDict()
_kept_pools_lock = threading.Lock()


def _kept_pool(key: tuple) -> urllib3.HTTPConnectionPool:
    """The pool of ``(scheme, checked address, port, host name)``, made on first use. Keyed by
    the address the URL resolved to just now, so reuse never skips a check; one idle connection
    per pool (a worker sends one request at a time)."""
    with _kept_pools_lock:
        pool = _kept_pools.pop(key, None) or _new_pool(*key)
        _kept_pools[key] = pool  # most recently used last
        evicted = _kept_pools.popitem(last=False)[1] if len(_kept_pools) > KEPT_POOLS else None
    if evicted is not None:
        evicted.close()
    return pool


def close_kept_pools() -> None:
    """Closes every kept connection (tests; a process about to fork)."""
    with _kept_pools_lock:
        pools = list(_kept_pools.values())
        _kept_pools.clear()
    for pool in pools:
        pool.close()


def _new_pool(scheme: str, address: str, port: int, hostname: str) -> urllib3.HTTPConnectionPool:
    if scheme == "https":
        return urllib3.HTTPSConnectionPool(address, port, maxsize=1, server_hostname=hostname,
                                           assert_hostname=hostname, cert_reqs="CERT_REQUIRED",
                                           ca_certs=certifi.where())  # fmt: skip
    return urllib3.HTTPConnectionPool(address, port, maxsize=1)
