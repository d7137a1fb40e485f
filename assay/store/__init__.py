"""Postgres, the only state: pool, migrations, tenant-scoped repositories, the system catalogue.

Names load with their module on first use (PEP 562), so a process can start the embedded PostgreSQL
(``assay.store.embedded``: the standard library only) before it imports psycopg and the repositories."""

from __future__ import annotations

from typing import TYPE_CHECKING

from assay._lazy import exports

if TYPE_CHECKING:
    from assay.store.catalogue import (
        CatalogueChanged,
        CatalogueQuery,
        CatalogueRecord,
        CatalogueRepository,
        CatalogueView,
        Groups,
        Sort,
    )
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
    "CatalogueChanged": "catalogue",
    "CatalogueQuery": "catalogue",
    "CatalogueRecord": "catalogue",
    "CatalogueRepository": "catalogue",
    "CatalogueView": "catalogue",
    "Database": "database",
    "EmbeddedPostgres": "embedded",
    "EvaluationPage": "evaluations",
    "EvaluationQuery": "evaluations",
    "EvaluationRecord": "evaluations",
    "EvaluationRepository": "evaluations",
    "Groups": "catalogue",
    "ListPosition": "evaluations",
    "LockedEvaluation": "evaluations",
    "OutboxRepository": "outbox",
    "OutboxStats": "outbox",
    "RunRow": "evaluations",
    "SchemaTooNew": "database",
    "Sort": "catalogue",
    "TenantStore": "database",
    "migrate": "database",
    "migrations": "database",
    "LoadedCatalogue": "system_catalogue",
    "default_config_dir": "system_catalogue",
    "load_catalogue_dir": "system_catalogue",
    "sync_system_catalogue": "system_catalogue",
    "watch_system_catalogue": "system_catalogue",
}


__getattr__ = exports(__name__, _HOMES)


__all__ = [
    "CatalogueChanged",
    "CatalogueQuery",
    "CatalogueRecord",
    "CatalogueRepository",
    "CatalogueView",
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
