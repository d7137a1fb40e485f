"""Where a tenant may send credentials: the egress rule for model endpoints and OCI registries.

A job carries the tenant's model key and registry credentials to the hosts it names, so a host that is the
hub's own machine or the cloud's metadata service is refused: link-local and metadata addresses always
(unless the operator allows them), loopback except on the local hub (where the local model server lives).
Names are checked as written; in a cluster the functions' NetworkPolicies hold the rest (docs/security.md).
"""

from __future__ import annotations

import ipaddress
from urllib.parse import urlsplit

from assay.errors import FieldError

__all__ = ["check_host", "check_url"]

_METADATA_NAMES = frozenset(
    {"metadata", "metadata.google.internal", "metadata.goog", "instance-data", "instance-data.ec2.internal"}
)
_LOOPBACK_NAMES = frozenset({"localhost", "localhost.localdomain", "ip6-localhost", "ip6-loopback"})


def _address(host: str) -> ipaddress.IPv4Address | ipaddress.IPv6Address | None:
    try:
        address = ipaddress.ip_address(host.strip("[]"))
    except ValueError:
        return None
    if isinstance(address, ipaddress.IPv6Address) and address.ipv4_mapped is not None:
        return address.ipv4_mapped
    return address


def check_host(host: str, path: str, *, allow_loopback: bool, allow_private: bool) -> FieldError | None:
    """None when ``host`` (a name or address, optionally with ``:port``) may receive credentials."""
    name = host.strip().lower()
    if name.startswith("["):
        name = name[1 : name.find("]")] if "]" in name else name
    elif name.count(":") == 1:
        name = name.split(":", 1)[0]
    name = name.rstrip(".")
    address = _address(name)
    if allow_private:
        return None
    if name in _METADATA_NAMES or (name.endswith(".internal") and name.startswith("metadata")):
        return FieldError(path, "egress_refused", f"{name!r} is a cloud metadata service")
    if address is not None and (address.is_link_local or address.is_unspecified or address.is_multicast):
        return FieldError(path, "egress_refused", f"{name} is a link-local, unspecified or multicast address")
    if name == "169.254.169.254" or name == "fd00:ec2::254":
        return FieldError(path, "egress_refused", f"{name} is a cloud metadata service")
    loopback = (
        name in _LOOPBACK_NAMES
        or name.endswith(".localhost")
        or (address is not None and address.is_loopback)
    )
    if loopback and not allow_loopback:
        return FieldError(path, "egress_refused", f"{name} is this hub's own machine (loopback)")
    return None


def check_url(url: str, path: str, *, allow_loopback: bool, allow_private: bool) -> FieldError | None:
    parts = urlsplit(url)
    if not parts.netloc:
        return None  # not a network URL: nothing is sent anywhere
    host = parts.hostname or ""
    return check_host(host, path, allow_loopback=allow_loopback, allow_private=allow_private)
