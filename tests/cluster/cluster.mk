# Real Kubernetes control plane for the tests (tests/cluster/README.md).
# Included from the top-level Makefile; paths are relative to the repository root.
PY ?= .venv/bin/python
CLUSTER_HARNESS := $(patsubst %/,%,$(dir $(lastword $(MAKEFILE_LIST))))/harness.py

.PHONY: cluster-build cluster-up cluster-down cluster-status

# Build the pinned binaries and fetch the CRDs, unless bin/<versions>/ already has them.
cluster-build:
	@$(PY) $(CLUSTER_HARNESS) build

# Start the cluster in the background (or find it running); prints one line: KUBECONFIG=<path>
cluster-up: cluster-build
	@$(PY) $(CLUSTER_HARNESS) up

# Stop the background cluster; no process is left behind.
cluster-down:
	@$(PY) $(CLUSTER_HARNESS) down

cluster-status:
	@$(PY) $(CLUSTER_HARNESS) status
