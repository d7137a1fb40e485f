"""The results dashboard served by the hub itself at ``/ui`` (docs/dashboard.md): evaluations live, one
evaluation, compare, a policy's history, the catalogue. Pages read the public REST API from the browser;
``principal_from_session`` (and ``SessionCookies``, the same for headers) lets the API's authentication
accept the dashboard's signed session cookie."""

from assay.ui.routes import router
from assay.ui.session import SessionCookies, principal_from_session

__all__ = ["SessionCookies", "principal_from_session", "router"]
