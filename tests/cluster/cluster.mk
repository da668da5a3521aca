# Real Kubernetes control plane for the tests (tests/cluster/README.md).
# Included from the top-level Makefile; paths are relative to the repository root.
# The harness needs only Python 3.11+ and `cryptography`: the venv's python when it exists, else python3.
PY ?= .venv/bin/python
CLUSTER_PY = $(if $(wildcard $(PY)),$(PY),python3)
CLUSTER_HARNESS := $(patsubst %/,%,$(dir $(lastword $(MAKEFILE_LIST))))/harness.py

.PHONY: cluster-build cluster-up cluster-down cluster-status

# Build the pinned binaries and fetch the CRDs, unless bin/<versions>/ already has them.
cluster-build:
	@$(CLUSTER_PY) $(CLUSTER_HARNESS) build

# Start the cluster and its data plane in the background (or find them running); prints KUBECONFIG=, GATEWAY_URL=,
# PROMETHEUS_URL=, MLFLOW_TRACKING_URI= (tests/cluster/README.md)
cluster-up: cluster-build
	@$(CLUSTER_PY) $(CLUSTER_HARNESS) up

# Stop the background cluster; no process is left behind.
cluster-down:
	@$(CLUSTER_PY) $(CLUSTER_HARNESS) down

cluster-status:
	@$(CLUSTER_PY) $(CLUSTER_HARNESS) status
