"""Shared fixtures live in tests/plugins/, one module per real dependency."""

pytest_plugins = [
    "tests.plugins.sample",
    "tests.plugins.postgres",
]
