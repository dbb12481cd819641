"""The examples' tests use the integration tier's real Redis, simulator and processes."""

from tests.conftest import _clean_environ, _logging_as_deployed, make_settings  # noqa: F401 - fixtures, re-exported for pytest
from tests.integration.conftest import (  # noqa: F401 - fixtures, re-exported for pytest
    redis_server,
    redis_url,
    settings,
    sim,
    sim_session,
    stack,
)
