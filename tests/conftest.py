"""Shared pytest configuration. Server fixtures live in plugins named here."""

pytest_plugins = [
    "tests.cluster.pytest_plugin",
    "tests.servers",
    "tests.prometheus_fixture",
]
