"""pytest fixtures for the real Kubernetes control plane (tests/cluster/README.md).

``k8s_cluster`` (session): starts etcd, kube-apiserver, kube-controller-manager,
kube-scheduler and kwok once per test session and stops them at the end, leaving no
process behind (they are also killed by the kernel if pytest itself dies). With
``TEST_KUBECONFIG=<path>`` (for example the one printed by ``make cluster-up``) the tests use
that running cluster instead. When the binaries are not built the k8s tests are skipped
with the command that builds them; ``make test`` always builds them first.

``k8s_process_pods`` (session): the cluster, skipping where the pod runner's processes cannot bind their
pod IPs (podnet.py). ``k8s_dataplane`` (session): Traefik (the Gateway API data plane) and Prometheus discovering the pods,
started next to ``k8s_cluster`` (``dataplane.py``); skipped when Traefik is not built. With
``TEST_KUBECONFIG`` the ones ``make cluster-up`` started are used.

``k8s_namespace`` (function): a fresh namespace, deleted after the test.
``k8s_api_client`` (session): an official ``kubernetes`` Python client ApiClient for the admin.
"""

from __future__ import annotations

import os
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.cluster import binaries, dataplane
from tests.cluster.harness import Cluster


@pytest.fixture(scope="session")
def k8s_cluster() -> Iterator[Cluster]:
    external = os.environ.get("TEST_KUBECONFIG")
    if external:
        yield Cluster.attach(Path(external))
        return
    if not binaries.is_built():
        pytest.skip("test cluster binaries are not built: run `make cluster-build` (see tests/cluster/README.md)")
    cluster = Cluster.start()
    try:
        yield cluster
    finally:
        cluster.stop()


@pytest.fixture(scope="session")
def k8s_process_pods(k8s_cluster: Cluster) -> Cluster:
    """The cluster, where the pod runner's processes can bind their pod IPs (skipped where they cannot)."""
    if k8s_cluster.pod_network_problem:
        pytest.skip(k8s_cluster.pod_network_problem)
    return k8s_cluster


@pytest.fixture(scope="session")
def k8s_dataplane(k8s_process_pods: Cluster) -> Iterator[dataplane.DataPlane]:
    k8s_cluster = k8s_process_pods
    if os.environ.get("TEST_KUBECONFIG"):
        found = dataplane.attach(k8s_cluster)
        if found is None:
            pytest.skip("the cluster of TEST_KUBECONFIG has no data plane (make cluster-up starts one)")
        yield found
        return
    if not binaries.traefik_built():
        pytest.skip("Traefik is not built: run `make cluster-build` (see tests/cluster/README.md)")
    plane = dataplane.start(k8s_cluster)
    try:
        yield plane
    finally:
        plane.stop()


@pytest.fixture()
def k8s_namespace(k8s_cluster: Cluster) -> Iterator[str]:
    name = f"t-{uuid.uuid4().hex[:10]}"
    k8s_cluster.kubectl("create", "namespace", name)
    try:
        yield name
    finally:
        k8s_cluster.kubectl("delete", "namespace", name, "--wait=false", check=False)


@pytest.fixture(scope="session")
def k8s_api_client(k8s_cluster: Cluster) -> Iterator[Any]:
    from kubernetes import config

    client = config.new_client_from_config(config_file=str(k8s_cluster.kubeconfig))
    try:
        yield client
    finally:
        client.close()
