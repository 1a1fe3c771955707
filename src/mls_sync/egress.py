"""Where the service may connect on its users' behalf: the egress policy.

A user's MLS base URL and token URL are theirs to choose, so without a policy the service
would connect wherever they say, loopback and the private network included, and tell them what
answered. Before every request (not only when a URL is saved: DNS can change between the two,
and a name may resolve to several addresses) the host is resolved and every address checked:
loopback, private, link-local, multicast, unspecified, shared (100.64/10) and reserved
addresses are refused, IPv4-mapped IPv6 forms included, as are the integer and octal spellings
of such addresses (they resolve to them). The request is then sent to the address that was
checked (the URL's host kept for the Host header and TLS), so a second lookup cannot swap it.

`MLS_SYNC_EGRESS_ALLOW` (comma-separated host names, host:port pairs or CIDR networks) lets
the operator allow specific ones: an MLS inside the VPC, the sandbox. In development loopback
is allowed by default (the sandbox and the demo run there); in production nothing private is,
and only https is.
"""

from __future__ import annotations

import asyncio
import ipaddress
import socket
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass, field

import httpx

Address = ipaddress.IPv4Address | ipaddress.IPv6Address
Network = ipaddress.IPv4Network | ipaddress.IPv6Network
Resolver = Callable[[str, int], Awaitable[Sequence[str]]]


class EgressRefused(httpx.TransportError):
    """The policy refuses this destination; nothing was sent. A TransportError, so code that
    treats network failures alike treats this one so too; the MLS client says which."""

    def __init__(self, message: str) -> None:
        super().__init__(message)


class Unresolved(EgressRefused):
    """The host does not resolve: no request can go there (and none does)."""


async def system_resolver(host: str, port: int) -> Sequence[str]:
    infos = await asyncio.get_running_loop().getaddrinfo(
        host, port, type=socket.SOCK_STREAM, proto=socket.IPPROTO_TCP
    )
    return [str(info[4][0]) for info in infos]


def _public(address: Address) -> bool:
    mapped = getattr(address, "ipv4_mapped", None)
    if mapped is not None:
        return _public(mapped)
    return address.is_global and not address.is_multicast


@dataclass(frozen=True)
class EgressPolicy:
    allow_hosts: frozenset[str] = frozenset()  # host names and literal addresses, any port
    allow_host_ports: frozenset[tuple[str, int]] = frozenset()
    allow_networks: tuple[Network, ...] = ()
    allow_loopback: bool = False
    https_only: bool = False
    resolver: Resolver = field(default=system_resolver, compare=False)

    @classmethod
    def parse(
        cls, allow: str, *, allow_loopback: bool, https_only: bool, resolver: Resolver | None = None
    ) -> EgressPolicy:
        """From MLS_SYNC_EGRESS_ALLOW; a ValueError names an entry that is none of a host, a
        host:port or a CIDR network."""
        hosts: set[str] = set()
        host_ports: set[tuple[str, int]] = set()
        networks: list[Network] = []
        for raw in allow.split(","):
            entry = raw.strip().lower()
            if not entry:
                continue
            if "/" in entry:
                try:
                    networks.append(ipaddress.ip_network(entry, strict=False))
                except ValueError:
                    raise ValueError(
                        f"MLS_SYNC_EGRESS_ALLOW: {raw.strip()!r} is not a network"
                    ) from None
                continue
            host, port = _split_host_port(entry)
            if not host or any(c in host for c in " @?#"):
                raise ValueError(f"MLS_SYNC_EGRESS_ALLOW: {raw.strip()!r} is not a host")
            if port is None:
                hosts.add(host)
            else:
                host_ports.add((host, port))
        return cls(
            frozenset(hosts),
            frozenset(host_ports),
            tuple(networks),
            allow_loopback,
            https_only,
            resolver or system_resolver,
        )

    def check_scheme(self, url: httpx.URL) -> None:
        if url.scheme not in ("http", "https"):
            raise EgressRefused(f"only http and https are allowed, not {url.scheme!r}")
        if self.https_only and url.scheme != "https":
            raise EgressRefused("only https is allowed in production")

    def named(self, host: str, port: int) -> bool:
        """Allowed by name (or literal address) in MLS_SYNC_EGRESS_ALLOW."""
        host = host.lower()
        return host in self.allow_hosts or (host, port) in self.allow_host_ports

    def address_allowed(self, text: str) -> bool:
        address = ipaddress.ip_address(text.split("%", 1)[0])  # a scope id is not part of it
        if _public(address):
            return True
        if any(address in network for network in self.allow_networks):
            return True
        mapped = getattr(address, "ipv4_mapped", None) or address
        return self.allow_loopback and mapped.is_loopback

    async def addresses(self, host: str, port: int) -> list[str]:
        """The addresses `host` resolves to, every one of them allowed; EgressRefused
        otherwise (one private answer among public ones is refused: a rebinding host)."""
        try:
            found = list(dict.fromkeys(await self.resolver(host, port)))
        except OSError:
            raise Unresolved(f"{host} does not resolve") from None
        if not found:
            raise Unresolved(f"{host} does not resolve")
        refused = [a for a in found if not self.address_allowed(a)]
        if refused:
            raise EgressRefused(
                f"{host} is a private or local address; MLS_SYNC_EGRESS_ALLOW can allow it"
            )
        return found

    async def check_url(self, url: str) -> None:
        """What a URL being saved must pass: what every request to it must, except that a
        name that does not resolve yet is not refused here (its requests will be, while it
        does not; a name whose DNS is not set up yet is no danger)."""
        try:
            parsed = httpx.URL(url)
        except httpx.InvalidURL as exc:  # 0177.0.0.1 and such: nothing could be sent there
            raise EgressRefused(f"not a URL that can be requested: {exc}") from None
        self.check_scheme(parsed)
        port = parsed.port or (443 if parsed.scheme == "https" else 80)
        if not self.named(parsed.host, port):
            try:
                await self.addresses(parsed.host, port)
            except Unresolved:
                return


class EgressTransport(httpx.AsyncBaseTransport):
    """An httpx transport that applies the policy to every request and sends it to the
    address it checked. Redirects are never followed (httpx's default, kept)."""

    def __init__(self, policy: EgressPolicy, inner: httpx.AsyncBaseTransport) -> None:
        self._policy = policy
        self._inner = inner

    async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
        url = request.url
        self._policy.check_scheme(url)
        port = url.port or (443 if url.scheme == "https" else 80)
        if not self._policy.named(url.host, port):
            pinned = (await self._policy.addresses(url.host, port))[0]
            if pinned != url.host:
                # The Host header was set when the request was built; TLS checks the name.
                request.url = url.copy_with(host=pinned)
                if url.scheme == "https":
                    request.extensions = {**request.extensions, "sni_hostname": url.host}
        return await self._inner.handle_async_request(request)

    async def aclose(self) -> None:
        await self._inner.aclose()


def _split_host_port(entry: str) -> tuple[str, int | None]:
    if entry.startswith("["):  # [v6]:port
        host, _, rest = entry[1:].partition("]")
        return host, _port(rest[1:]) if rest.startswith(":") else None
    if entry.count(":") == 1:
        host, port = entry.split(":")
        return host, _port(port)
    return entry, None


def _port(text: str) -> int:
    try:
        port = int(text)
    except ValueError:
        raise ValueError(f"MLS_SYNC_EGRESS_ALLOW: {text!r} is not a port") from None
    if not 0 < port < 65536:
        raise ValueError(f"MLS_SYNC_EGRESS_ALLOW: {text!r} is not a port")
    return port
