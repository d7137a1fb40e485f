"""The real-cluster tier: skipped unless ``ASSAY_TEST_KUBECONFIG`` names a kubeconfig (docs/cluster.md, "Running
against a real cluster"). One deployment of Assay per session (deployment.py), in a fresh tenant namespace."""

from __future__ import annotations

import os
import secrets
import uuid
from collections.abc import Iterator
from pathlib import Path

import psycopg
import pytest
from psycopg.conninfo import make_conninfo

from tests.cluster_real.deployment import Deployment, Kube, deployed
from tests.cluster_real.tier import Tier

SKIP_REASON = (
    "ASSAY_TEST_KUBECONFIG is not set: the real-cluster tier runs against the cluster that kubeconfig names "
    "(kind, k3d, a dev cluster, or cluster/control_plane.py); see docs/cluster.md"
)
# Short graces so the watcher's waits end within a test; each is what a Knative Service's env could set.
SETTINGS = {
    "ASSAY_K8S_RESULT_GRACE_SECONDS": "2",
    "ASSAY_LOG_LEVEL": "INFO",
}


@pytest.fixture(scope="session")
def real_kube() -> Kube:
    kubeconfig = os.environ.get("ASSAY_TEST_KUBECONFIG")
    if not kubeconfig:
        pytest.skip(SKIP_REASON)
    path = Path(kubeconfig)
    if not path.is_file():
        pytest.fail(f"ASSAY_TEST_KUBECONFIG={kubeconfig} is not a file")
    kube = Kube(path, os.environ.get("ASSAY_TEST_KUBECTL", "kubectl"))
    kube.run("get", "--raw=/readyz")  # fails the session at once if the cluster is not there
    return kube


@pytest.fixture(scope="session")
def real_database(real_kube: Kube, pg_server: str) -> Iterator[str]:
    name = f"real_{uuid.uuid4().hex[:12]}"
    with psycopg.connect(pg_server, autocommit=True) as conn:
        conn.execute(f'CREATE DATABASE "{name}"')
    yield make_conninfo(pg_server, dbname=name)
    with psycopg.connect(pg_server, autocommit=True) as conn:
        conn.execute(f'DROP DATABASE "{name}" WITH (FORCE)')


@pytest.fixture(scope="session")
def deployment(
    real_kube: Kube, real_database: str, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[Deployment]:
    tenant = f"rt-{secrets.token_hex(3)}"
    with deployed(real_kube, tmp_path_factory.mktemp("real"), real_database, tenant, SETTINGS) as found:
        yield found


@pytest.fixture(scope="session")
def tier(deployment: Deployment) -> Tier:
    """The session's tenant, its provider registered through the API."""
    found = Tier(deployment, deployment.tenants[0])
    found.add_provider()
    return found
