"""The sidecar: one async HTTP process beside an adapter (pod mode) or for all local jobs (local mode) that
forwards and buffers events to the hub, proxies the model endpoint with a response cache, a concurrency
cap, retries and accounting, and proxies MLflow and the OCI registry with credentials the adapter never sees.

Run it with ``python -m adapters.sidecar --config PATH``; embed it with :func:`create_app`.
"""

from adapters.sidecar._app import create_app
from adapters.sidecar._config import ConfigError, SidecarConfig

__all__ = ["ConfigError", "SidecarConfig", "create_app"]
