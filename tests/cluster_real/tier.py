"""One tenant of the deployment, as the scenarios use it: the user's API calls, the sidecar's status events, and
the pod outcomes a kubelet would write (there may be none: on a bare control plane nothing runs the pods)."""

from __future__ import annotations

import base64
import json
from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any

from tests.cluster_real.deployment import Deployment
from tests.support.waiting import wait_for

IMAGE = "ghcr.io/assay-evals/adapter-exact:0.1.0"
WAIT = 120.0  # seconds: a loaded machine, a real controller loop, Kueue's scheduling cycle
EVALUATION = "assay.dev/evaluation-id"


def provider() -> dict[str, Any]:
    return {
        "id": "exact",
        "name": "Exact match",
        "runtime": {
            "k8s": {
                "image": IMAGE,
                "entrypoint": ["python", "-m", "adapters.exact"],
                "cpu_request": "250m",
                "memory_request": "256Mi",
                "cpu_limit": "1",
                "memory_limit": "512Mi",
            }
        },
        "benchmarks": [
            {"id": b, "name": b, "category": "qa", "metrics": ["exact_match"]} for b in ("qa", "qa_f1")
        ],
    }


def cpus(quantity: str | int | float) -> float:
    text = str(quantity)
    return float(text[:-1]) / 1000 if text.endswith("m") else float(text)


def now() -> str:
    return datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def terminated(phase: str, exit_code: int, reason: str) -> dict[str, Any]:
    """A pod ``status`` as a kubelet writes it when the adapter container ended."""
    state = {"terminated": {"exitCode": exit_code, "reason": reason, "startedAt": now(), "finishedAt": now()}}
    adapter = {
        "name": "adapter",
        "image": IMAGE,
        "imageID": "",
        "ready": False,
        "restartCount": 0,
        "state": state,
    }
    return {"phase": phase, "containerStatuses": [adapter]}


def condition(obj: dict[str, Any] | None, kind: str) -> dict[str, Any] | None:
    for found in (obj or {}).get("status", {}).get("conditions", []) or []:
        if found.get("type") == kind:
            return dict(found)
    return None


def is_true(obj: dict[str, Any] | None, kind: str) -> bool:
    found = condition(obj, kind)
    return found is not None and found.get("status") == "True"


class Tier:
    def __init__(self, deployment: Deployment, tenant: str) -> None:
        self.deployment = deployment
        self.kube = deployment.kube
        self.tenant = tenant
        self.user = deployment.user(tenant)
        self.sidecar = deployment.sidecar(tenant)

    # -- the user's side ----------------------------------------------------------------------------

    def add_provider(self) -> None:
        answer = self.user.post("/api/v1/evaluations/providers", json=provider())
        assert answer.status_code == 201, f"POST /providers as deployed: {answer.status_code} {answer.text}"

    def submit_answer(self, benchmarks: list[dict[str, Any]] | None = None, **extra: Any) -> Any:
        body = {
            "name": "on a real cluster",
            "model": {"url": "http://vllm.models.svc:8000/v1", "name": "granite"},
            "benchmarks": benchmarks or [{"id": "qa", "provider_id": "exact"}],
            **extra,
        }
        return self.user.post("/api/v1/evaluations/jobs", json=body)

    def submit(self, benchmarks: list[dict[str, Any]] | None = None, **extra: Any) -> str:
        answer = self.submit_answer(benchmarks, **extra)
        assert answer.status_code == 202, f"POST /jobs: {answer.status_code} {answer.text}"
        return str(answer.json()["resource"]["id"])

    def job(self, job_id: str) -> dict[str, Any]:
        answer = self.user.get(f"/api/v1/evaluations/jobs/{job_id}")
        assert answer.status_code == 200, answer.text
        return dict(answer.json())

    def benchmark(self, job_id: str, index: int = 0) -> dict[str, Any]:
        return dict(self.job(job_id)["status"]["benchmarks"][index])

    def wait_benchmark(
        self, job_id: str, test: Callable[[dict[str, Any]], bool], *, tick: bool = False, index: int = 0
    ) -> dict[str, Any]:
        """Until the benchmark passes ``test``. ``tick``: the PingSource ticks meanwhile (the watcher's waits
        that no object change ends, like the result grace, end at a tick)."""

        def reached() -> dict[str, Any] | None:
            if tick:
                self.deployment.tick()
            entry = self.benchmark(job_id, index)
            return entry if test(entry) else None

        found: dict[str, Any] = wait_for(reached, timeout=WAIT, interval=0.5)
        return found

    def wait_state(self, job_id: str, *states: str, tick: bool = False) -> dict[str, Any]:
        def reached() -> dict[str, Any] | None:
            if tick:
                self.deployment.tick()
            job = self.job(job_id)
            return job if job["status"]["state"] in states else None

        found: dict[str, Any] = wait_for(reached, timeout=WAIT, interval=0.5)
        return found

    def wait_failed(self, job_id: str, *, tick: bool = False) -> dict[str, Any]:
        return self.wait_benchmark(job_id, lambda b: b["status"] == "failed", tick=tick)

    def cancel(self, job_id: str) -> int:
        return int(self.user.delete(f"/api/v1/evaluations/jobs/{job_id}").status_code)

    def report(self, job_id: str, index: int, status: str, **fields: Any) -> None:
        """A status event as the sidecar forwards it for the adapter, at the callback Service."""
        event = {
            "provider_id": "exact",
            "id": self.benchmark(job_id, index)["id"],
            "benchmark_index": index,
            "status": status,
            **fields,
        }
        answer = self.sidecar.post(
            f"/api/v1/evaluations/jobs/{job_id}/events",
            json={"benchmark_status_event": event},
            headers=self._launch_credential(job_id, index),
        )
        assert answer.status_code in (200, 204), answer.text

    def _launch_credential(self, job_id: str, index: int) -> dict[str, str]:
        """The launch's own token, from the Secret dispatch made for it (mounted into the sidecar at
        ``hub-token``); where the runtime makes none, the user's."""
        for job in self.jobs(job_id):
            indices = job["metadata"].get("annotations", {}).get("assay.dev/benchmark-indices", "")
            if str(index) not in indices.split(","):
                continue
            secret = self.kube.get("secrets", self.tenant, f"{job['metadata']['name']}-token")
            if secret is not None:
                return {"Authorization": "Bearer " + base64.b64decode(secret["data"]["token"]).decode()}
        return {}

    # -- the cluster's side -------------------------------------------------------------------------

    def jobs(self, job_id: str) -> list[dict[str, Any]]:
        return self.kube.list("jobs", self.tenant, f"{EVALUATION}={job_id}")

    def wait_job(self, job_id: str, count: int = 1) -> list[dict[str, Any]]:
        def made() -> list[dict[str, Any]] | None:
            found = self.jobs(job_id)
            return found if len(found) >= count else None

        jobs: list[dict[str, Any]] = wait_for(made, timeout=WAIT, interval=0.5)
        return sorted(jobs, key=lambda j: j["metadata"]["name"])

    def workload(self, job: dict[str, Any]) -> dict[str, Any] | None:
        found = self.kube.list(
            "workloads.kueue.x-k8s.io", self.tenant, f"kueue.x-k8s.io/job-uid={job['metadata']['uid']}"
        )
        return found[0] if found else None

    def wait_workload(self, job: dict[str, Any], test: Callable[[dict[str, Any]], bool]) -> dict[str, Any]:
        def reached() -> dict[str, Any] | None:
            found = self.workload(job)
            return found if found is not None and test(found) else None

        workload: dict[str, Any] = wait_for(reached, timeout=WAIT, interval=0.5)
        return workload

    def wait_admitted(self, job: dict[str, Any]) -> dict[str, Any]:
        return self.wait_workload(job, lambda w: is_true(w, "Admitted"))

    def cohort_cpus(self) -> float:
        """All the CPUs the tenant's ClusterQueue may use: the cohort's own and every queue's of the cohort."""
        queue = self.kube.run("get", "clusterqueue", f"assay-{self.tenant}", "-o", "json").stdout
        cohort_name = json.loads(queue)["spec"]["cohortName"]
        cohort = json.loads(self.kube.run("get", "cohort", cohort_name, "-o", "json").stdout)
        queues = json.loads(self.kube.run("get", "clusterqueues", "-o", "json").stdout)["items"]
        groups = [
            g
            for q in queues
            if q["spec"].get("cohortName") == cohort_name
            for g in q["spec"]["resourceGroups"]
        ]
        groups += cohort["spec"].get("resourceGroups", [])
        return sum(
            cpus(r["nominalQuota"])
            for g in groups
            for f in g["flavors"]
            for r in f["resources"]
            if r["name"] == "cpu"
        )

    def nominal_cpus(self) -> float:
        queue = json.loads(self.kube.run("get", "clusterqueue", f"assay-{self.tenant}", "-o", "json").stdout)
        return sum(
            cpus(r["nominalQuota"])
            for g in queue["spec"]["resourceGroups"]
            for f in g["flavors"]
            for r in f["resources"]
            if r["name"] == "cpu"
        )

    def current(self, job: dict[str, Any]) -> dict[str, Any] | None:
        return self.kube.get("jobs", self.tenant, job["metadata"]["name"])

    def wait_job_where(self, job: dict[str, Any], test: Callable[[dict[str, Any]], bool]) -> dict[str, Any]:
        def reached() -> dict[str, Any] | None:
            found = self.current(job)
            return found if found is not None and test(found) else None

        current: dict[str, Any] = wait_for(reached, timeout=WAIT, interval=0.5)
        return current

    def wait_job_event(self, job: dict[str, Any], reason: str) -> dict[str, Any]:
        """The Event with ``reason`` that a controller recorded on the Job. Unlike the Job's conditions it outlives
        the Job: Assay removes a failed launch as soon as it has read why, often before a poll sees the Job."""
        selector = f"involvedObject.kind=Job,involvedObject.name={job['metadata']['name']},reason={reason}"

        def recorded() -> dict[str, Any] | None:
            done = self.kube.run(
                "get", "events", "-n", self.tenant, "--field-selector", selector, "-o", "json"
            )
            items: list[dict[str, Any]] = json.loads(done.stdout)["items"]
            return items[0] if items else None

        event: dict[str, Any] = wait_for(recorded, timeout=WAIT, interval=0.5)
        return event

    def wait_pod(self, job: dict[str, Any]) -> dict[str, Any]:
        """The pod the real Job controller made once Kueue unsuspended the Job."""

        def made() -> dict[str, Any] | None:
            pods = self.kube.list(
                "pods", self.tenant, f"batch.kubernetes.io/job-name={job['metadata']['name']}"
            )
            return pods[0] if pods else None

        pod: dict[str, Any] = wait_for(made, timeout=WAIT, interval=0.5)
        return pod

    def play_pod(self, pod: dict[str, Any], status: dict[str, Any]) -> None:
        """What the kubelet would write: the pod's status."""
        self.kube.patch_status("pods", self.tenant, pod["metadata"]["name"], status)

    def leftovers(self, job_id: str) -> dict[str, int]:
        """What is left of the evaluation in the namespace, by kind (the garbage collector is real)."""
        selector = f"{EVALUATION}={job_id}"
        counts = {
            kind: len(self.kube.list(kind, self.tenant, selector))
            for kind in ("jobs", "configmaps", "secrets", "pods")
        }
        uids = {j["metadata"]["uid"] for j in self.jobs(job_id)}
        workloads = self.kube.list("workloads.kueue.x-k8s.io", self.tenant)
        counts["workloads"] = sum(
            1
            for w in workloads
            if w["metadata"].get("labels", {}).get("kueue.x-k8s.io/job-uid") in uids
            or any(
                ref.get("name", "").startswith(f"assay-{job_id}-")
                for ref in w["metadata"].get("ownerReferences", [])
            )
        )
        return {kind: n for kind, n in counts.items() if n}
