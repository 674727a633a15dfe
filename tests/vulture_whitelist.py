"""Names vulture reports as unused that are used, by a caller it cannot see (tests/test_dead_code.py).

Vulture counts a name as used once it appears anywhere it reads, so each line below names one. The
file is never run; ``used`` stands for whatever object holds the name. Every entry says who uses it,
and tests/test_dead_code.py fails when a name here no longer appears in sqlmode/ (a stale entry).
"""

from typing import Any

used: Any = None

WHITELIST = (
    used.exc,  # __exit__ / __aexit__ parameters (audit/file.py, service.py): the protocol's signature
    used.dotenv_settings,  # pydantic-settings passes settings_customise_sources' sources by keyword
    used.file_secret_settings,  # (config.py) so the parameter names must stay
    used.language,  # validate_code(code, language="sql"): part of the MCP tool's contract (server.py)
    used.signum,  # a signal handler's signature (workers.py)
    used.frame,
)
