"""Postgres, the only state: pool, migrations, tenant-scoped repositories, the system catalogue."""

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
