"""Application layer: use cases that combine the engine with the adapters."""
