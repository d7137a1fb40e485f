"""Who is asking: the tenant every stored row belongs to, and the user who made the request."""

from __future__ import annotations

import re
from dataclasses import dataclass

from assay.errors import InvalidIdentity

_DNS_LABEL = re.compile(r"^[a-z0-9]([-a-z0-9]{0,61}[a-z0-9])?$")
_USER = re.compile(r"^[^\x00-\x1f\x7f]{1,256}$")


@dataclass(frozen=True, slots=True)
class Tenant:
    """A tenant name: an RFC 1123 DNS label, because in cluster mode it is a namespace."""

    name: str

    def __post_init__(self) -> None:
        if not _DNS_LABEL.match(self.name):
            raise InvalidIdentity(
                f"X-Tenant {self.name[:80]!r} is not a valid tenant name "
                "(lower-case letters, digits and '-', at most 63 characters)",
                message_code="invalid_tenant_header",
            )

    def __str__(self) -> str:
        return self.name


def parse_user(raw: str) -> str:
    if not _USER.match(raw):
        raise InvalidIdentity("X-User must be 1-256 printable characters", message_code="invalid_user_header")
    return raw


__all__ = ["Tenant", "parse_user"]
