"""MLOps control plane for canary rollouts of attention models."""

__version__ = "0.1.0"
