"""The results dashboard served by the hub itself at ``/ui`` (docs/dashboard.md): evaluations live, one
evaluation, compare, a policy's history, the catalogue. Pages read the public REST API from the browser;
``principal_from_session`` (and ``SessionCookies``, the same for headers) lets the API's authentication
accept the dashboard's signed session cookie.

Names load on first use: every app reads the session cookie, only the submit function and the local hub build
the pages' routes."""

from typing import TYPE_CHECKING

from assay._lazy import exports

if TYPE_CHECKING:
    from assay.ui.routes import router
    from assay.ui.session import SessionCookies, principal_from_session

__getattr__ = exports(
    __name__, {"router": "routes", "SessionCookies": "session", "principal_from_session": "session"}
)

__all__ = ["SessionCookies", "principal_from_session", "router"]
