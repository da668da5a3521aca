"""The k8s fixtures the install tests share with tests/k8s (the CRD, controller processes)."""

from tests.k8s.conftest import controllers, crd  # noqa: F401  (pytest fixtures)
