"""Who is on the other end of a request: the client's address, through the reverse proxies we trust.

Behind a proxy every request comes from the proxy's address, so limits per client would lump all customers
together. GATEWAY_TRUSTED_PROXIES lists the proxies (addresses or networks) whose X-Forwarded-For is believed:
the client is the right-most address in that header that is not one of them. Anyone else's X-Forwarded-For is
ignored (a client could write anything there). A loopback peer that is not a listed proxy is no client address.
"""
from __future__ import annotations

import ipaddress
from typing import Iterable, Optional, Sequence, Tuple, Union

from aiohttp import web

Network = Union[ipaddress.IPv4Network, ipaddress.IPv6Network]


def parse_networks(text: str) -> Tuple[Network, ...]:
    """'127.0.0.1, 10.0.0.0/8' -> networks; raises ValueError naming a bad entry."""
    networks = []
    for entry in (part.strip() for part in text.split(",")):
        if not entry:
            continue
        try:
            networks.append(ipaddress.ip_network(entry, strict=False))
        except ValueError:
            raise ValueError(f"GATEWAY_TRUSTED_PROXIES: {entry!r} is not an address or network") from None
    return tuple(networks)


def _address(text: str) -> Optional[Union[ipaddress.IPv4Address, ipaddress.IPv6Address]]:
    try:
        return ipaddress.ip_address(text.strip().strip("[]"))
    except ValueError:
        return None


def _trusted(address, proxies: Iterable[Network]) -> bool:
    return address is not None and any(address in network for network in proxies)


def client_address(request: web.Request, proxies: Sequence[Network]) -> str:
    """The client's address as text; '' when it cannot be known: a loopback peer that is not a trusted proxy is a
    local reverse proxy nobody listed (every customer would seem to share its address) or a local test, and the
    limits per client address are then not applied rather than applied to everyone at once."""
    peer = request.remote or ""
    if proxies and _trusted(_address(peer), proxies):
        for hop in reversed(request.headers.get("X-Forwarded-For", "").split(",")):
            address = _address(hop)
            if address is None:
                break                   # a malformed hop: stop believing the header here
            if not _trusted(address, proxies):
                return str(address)
    address = _address(peer)
    return "" if address is None or address.is_loopback else peer


def masked_address(address: str) -> str:
    """An address for the logs: IPv4 to its /24 ('203.0.113.x'), IPv6 to its /48."""
    parsed = _address(address)
    if parsed is None:
        return "?"
    if parsed.version == 4:
        return ".".join(str(parsed).split(".")[:3]) + ".x"
    return str(ipaddress.ip_network(f"{parsed}/48", strict=False).network_address) + "/48"
