"""Shared fixtures live in tests/plugins/, one module per real dependency."""

pytest_plugins = [
    "tests.plugins.sample",
    "tests.plugins.postgres",
]


def pytest_xdist_auto_num_workers(config: object) -> int | None:
    """One worker when the tests share a PostgreSQL server (SQLMODE_TEST_POSTGRES_URL).

    Each worker starts its own embedded server otherwise; on a shared one, workers would grant and
    revoke on cluster-wide roles (the sample reader) under each other.
    """
    import os

    from tests.plugins.postgres import URL_ENV

    return 1 if os.environ.get(URL_ENV) else None
