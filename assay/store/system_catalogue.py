"""The system catalogue: read-only providers and collections loaded from YAML, kept in sync with the files.

Layout (as in EvalHub): ``<config_dir>/providers/*.yaml`` and ``<config_dir>/collections/*.yaml``,
one resource per file, ``id`` required. Files are validated exactly like API bodies; a file that
fails is skipped and reported, the others still load. On every (re)load the system rows in
Postgres are replaced in one transaction, so every replica and tenant sees the same catalogue.
"""

from __future__ import annotations

import asyncio
import hashlib
import logging
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from pathlib import Path

from pydantic import ValidationError

from assay.api import CollectionSpec, ProviderSpec
from assay.core import check_collection, field_errors
from assay.errors import InvalidRequest
from assay.store.catalogue import SystemCatalogueWriter

log = logging.getLogger(__name__)


def catalogue_fingerprint(root: Path) -> str:
    """A digest of every catalogue file's name and bytes: equal digests mean an identical catalogue."""
    digest = hashlib.sha256()
    for folder in ("providers", "collections"):
        for path in yaml_files(root / folder):
            digest.update(f"{folder}/{path.name}\0".encode())
            digest.update(path.read_bytes())
            digest.update(b"\0")
    return digest.hexdigest()


@dataclass(slots=True)
class LoadedCatalogue:
    providers: list[ProviderSpec] = field(default_factory=list)
    collections: list[CollectionSpec] = field(default_factory=list)
    problems: list[str] = field(default_factory=list)
    warnings: list[str] = field(default_factory=list)


def default_config_dir() -> Path:
    """The ``config/`` directory of a source checkout, else the copy bundled in the wheel."""
    package = Path(__file__).resolve().parent.parent
    checkout = package.parent / "config"
    return checkout if (checkout / "providers").is_dir() else package / "_bundled_config"


def yaml_files(folder: Path) -> list[Path]:
    if not folder.is_dir():
        return []
    return sorted(p for p in folder.iterdir() if p.suffix in (".yaml", ".yml") and p.is_file())


def read_resource_file(path: Path, problems: list[str]) -> dict[str, object] | None:
    import yaml  # only a (re)load needs it, not every cold start

    loader = getattr(yaml, "CSafeLoader", yaml.SafeLoader)  # both safe; libyaml's ~5x faster
    try:
        data = yaml.load(path.read_text(encoding="utf-8"), Loader=loader)
    except (OSError, yaml.YAMLError) as exc:
        problems.append(f"{path.name}: cannot read YAML: {exc}")
        return None
    if not isinstance(data, dict) or not data.get("id"):
        problems.append(f"{path.name}: not a mapping with an 'id'")
        return None
    return data


def invalid_file(path: Path, exc: ValidationError | InvalidRequest) -> str:
    errors = field_errors(exc.errors()) if isinstance(exc, ValidationError) else list(exc.errors)
    return f"{path.name}: " + "; ".join(f"{e.path}: {e.message}" for e in errors)


def load_catalogue_dir(root: Path) -> LoadedCatalogue:
    """Parse and validate every provider and collection file under ``root``."""
    loaded = LoadedCatalogue()
    seen: set[str] = set()
    for path in yaml_files(root / "providers"):
        data = read_resource_file(path, loaded.problems)
        if data is None:
            continue
        try:
            provider = ProviderSpec.model_validate(data)
        except ValidationError as exc:
            loaded.problems.append(invalid_file(path, exc))
            continue
        if provider.id in seen:
            loaded.problems.append(f"{path.name}: provider id {provider.id!r} is defined twice")
            continue
        seen.add(str(provider.id))
        loaded.providers.append(provider)
    by_id = {str(p.id): p for p in loaded.providers}
    seen.clear()
    for path in yaml_files(root / "collections"):
        data = read_resource_file(path, loaded.problems)
        if data is None:
            continue
        try:
            checked = check_collection(CollectionSpec.model_validate(data), by_id)
        except (ValidationError, InvalidRequest) as exc:
            loaded.problems.append(invalid_file(path, exc))
            continue
        collection = checked.spec
        for warning in checked.warnings:
            loaded.warnings.append(f"{path.name}: {warning.path}: {warning.message}")
        if collection.id in seen:
            loaded.problems.append(f"{path.name}: collection id {collection.id!r} is defined twice")
            continue
        seen.add(str(collection.id))
        loaded.collections.append(collection)
    return loaded


def _stored(spec: ProviderSpec | CollectionSpec) -> tuple[str, dict[str, object]]:
    return str(spec.id), spec.model_dump(mode="json", exclude_none=True, exclude={"id", "resource"})


async def sync_system_catalogue(
    writer: SystemCatalogueWriter, root: Path, *, force: bool = False
) -> LoadedCatalogue | None:
    """Load ``root`` into the system rows, unless the stored catalogue came from identical files.

    The skip keeps a function's cold start from re-parsing the catalogue each time it scales up;
    returns None when it skipped.
    """
    fingerprint = await asyncio.to_thread(catalogue_fingerprint, root)
    if not force and await writer.fingerprint() == fingerprint:
        log.debug("system catalogue unchanged (%s)", fingerprint[:12])
        return None
    loaded = await asyncio.to_thread(load_catalogue_dir, root)
    for problem in loaded.problems:
        log.error("system catalogue file skipped: %s", problem)
    for warning in loaded.warnings:
        log.warning("system catalogue: %s", warning)
    counts = await writer.replace(
        [_stored(p) for p in loaded.providers], [_stored(c) for c in loaded.collections], fingerprint
    )
    log.info(
        "system catalogue loaded from %s: %d providers, %d collections",
        root,
        counts["providers"],
        counts["collections"],
    )
    return loaded


async def watch_system_catalogue(
    writer: SystemCatalogueWriter,
    root: Path,
    stop: asyncio.Event,
    then: Callable[[], Awaitable[object]] | None = None,
) -> None:
    """Reload whenever a file under ``root`` changes (ConfigMap symlink swaps included) until ``stop``; ``then``
    runs after each reload (the policy files, which refer to the catalogue)."""
    from watchfiles import awatch

    async for _ in awatch(root, stop_event=stop, debounce=300, recursive=True):
        try:
            await sync_system_catalogue(writer, root)
            if then is not None:
                await then()
        except Exception:  # keep watching: the next change may fix it
            log.exception("reloading the system catalogue failed")


__all__ = [
    "LoadedCatalogue",
    "default_config_dir",
    "invalid_file",
    "load_catalogue_dir",
    "read_resource_file",
    "sync_system_catalogue",
    "watch_system_catalogue",
    "yaml_files",
]
