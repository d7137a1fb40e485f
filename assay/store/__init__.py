"""Postgres, the only state: pool, migrations, tenant-scoped repositories, the system catalogue.

Names load with their module on first use (PEP 562), so a process can start the embedded PostgreSQL
(``assay.store.embedded``: the standard library only) before it imports psycopg and the repositories."""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from assay.store.catalogue import CatalogueQuery, CatalogueRecord, CatalogueRepository, Groups, Sort
    from assay.store.database import Database, SchemaTooNew, TenantStore, migrate, migrations
    from assay.store.embedded import EmbeddedPostgres
    from assay.store.evaluations import (
        EvaluationPage,
        EvaluationQuery,
        EvaluationRecord,
        EvaluationRepository,
        ListPosition,
        LockedEvaluation,
        RunRow,
    )
    from assay.store.outbox import OutboxRepository, OutboxStats
    from assay.store.system_catalogue import (
        LoadedCatalogue,
        default_config_dir,
        load_catalogue_dir,
        sync_system_catalogue,
        watch_system_catalogue,
    )

_HOMES = {
    "CatalogueQuery": "assay.store.catalogue",
    "CatalogueRecord": "assay.store.catalogue",
    "CatalogueRepository": "assay.store.catalogue",
    "Database": "assay.store.database",
    "EmbeddedPostgres": "assay.store.embedded",
    "EvaluationPage": "assay.store.evaluations",
    "EvaluationQuery": "assay.store.evaluations",
    "EvaluationRecord": "assay.store.evaluations",
    "EvaluationRepository": "assay.store.evaluations",
    "Groups": "assay.store.catalogue",
    "ListPosition": "assay.store.evaluations",
    "LockedEvaluation": "assay.store.evaluations",
    "OutboxRepository": "assay.store.outbox",
    "OutboxStats": "assay.store.outbox",
    "RunRow": "assay.store.evaluations",
    "SchemaTooNew": "assay.store.database",
    "Sort": "assay.store.catalogue",
    "TenantStore": "assay.store.database",
    "migrate": "assay.store.database",
    "migrations": "assay.store.database",
    "LoadedCatalogue": "assay.store.system_catalogue",
    "default_config_dir": "assay.store.system_catalogue",
    "load_catalogue_dir": "assay.store.system_catalogue",
    "sync_system_catalogue": "assay.store.system_catalogue",
    "watch_system_catalogue": "assay.store.system_catalogue",
}


def __getattr__(name: str) -> Any:
    home = _HOMES.get(name)
    if home is None:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    value = getattr(importlib.import_module(home), name)
    globals()[name] = value  # once: later lookups do not come here
    return value


__all__ = [
    "CatalogueQuery",
    "CatalogueRecord",
    "CatalogueRepository",
    "Database",
    "EmbeddedPostgres",
    "EvaluationPage",
    "EvaluationQuery",
    "EvaluationRecord",
    "EvaluationRepository",
    "Groups",
    "ListPosition",
    "LoadedCatalogue",
    "LockedEvaluation",
    "OutboxRepository",
    "OutboxStats",
    "RunRow",
    "SchemaTooNew",
    "Sort",
    "TenantStore",
    "default_config_dir",
    "load_catalogue_dir",
    "migrate",
    "migrations",
    "sync_system_catalogue",
    "watch_system_catalogue",
]
