"""One exception tree for sqlmode.

Every error carries a stable ``code`` (UPPER_SNAKE), a ``message`` for people and a
``hint`` an LLM can act on. Callers catch the branch they care about::

    SqlmodeError
    ├── ConfigError                  bad or missing configuration (file, key, problem)
    │   └── SecretError              missing or too-short token secret
    ├── SchemaError                  reflection failed or the schema is unusable
    ├── AnalysisError                the analyzer itself could not run (never a pass)
    │   └── AnalysisTimeoutError         ANALYSIS_TIMEOUT: it ran past server.analysis_timeout_ms
    ├── PolicyError                  Cedar policies/schema failed to load or validate
    ├── ApprovalError                code was not approved (validation refused it)
    │   ├── ApprovalPending              APPROVAL_PENDING (not an error to the model: waits for a person)
    │   └── HumanApprovalError           APPROVAL_DENIED / APPROVAL_EXPIRED / APPROVAL_USED / ...
    ├── TokenError                   approval token refused; ``code`` says why
    │   ├── TokenMalformedError          TOKEN_MALFORMED
    │   ├── TokenUnknownKeyError         TOKEN_UNKNOWN_KEY
    │   ├── TokenSignatureError          TOKEN_BAD_SIGNATURE
    │   ├── TokenExpiredError            TOKEN_EXPIRED / TOKEN_NOT_YET_VALID
    │   ├── TokenCodeMismatchError       TOKEN_CODE_MISMATCH
    │   ├── TokenPrincipalMismatchError  TOKEN_USER_MISMATCH / TOKEN_SESSION_MISMATCH
    │   ├── TokenSchemaChangedError      TOKEN_SCHEMA_CHANGED
    │   ├── TokenPolicyChangedError      TOKEN_POLICY_CHANGED
    │   ├── TokenScopeChangedError       TOKEN_SCOPE_CHANGED
    │   ├── TokenInstanceError           TOKEN_OTHER_INSTANCE
    │   └── TokenReplayError             TOKEN_ALREADY_USED
    ├── ExecutionError               the database refused or failed the query
    │   ├── QueryTimeoutError            QUERY_TIMEOUT
    │   ├── QueryCancelledError          QUERY_CANCELLED
    │   ├── PermissionDeniedError        PERMISSION_DENIED
    │   ├── DatabaseUnavailableError     DATABASE_UNAVAILABLE
    │   ├── NotAQueryError               NOT_A_QUERY
    │   └── WriteLimitExceededError      WRITE_LIMIT_EXCEEDED
    ├── StateError                   the shared state store failed: nothing runs
    ├── AuditError                   the audit record could not be written: nothing runs
    ├── AuthError                    HTTP credentials missing or wrong
    └── RateLimitedError             RATE_LIMITED: a per-principal limit of [server]; retry_after
"""

from __future__ import annotations

from typing import Any


class SqlmodeError(Exception):
    """Root of every sqlmode error."""

    code: str = "SQLMODE_ERROR"
    hint: str = ""

    def __init__(self, message: str, *, code: str | None = None, hint: str | None = None, **data: Any):
        super().__init__(message)
        self.message = message
        if code is not None:
            self.code = code
        if hint is not None:
            self.hint = hint
        self.data = data

    def __str__(self) -> str:
        return self.message

    def to_dict(self) -> dict[str, Any]:
        """JSON-safe form for tool errors and `--json` output."""
        return {"code": self.code, "message": self.message, "hint": self.hint}


class ConfigError(SqlmodeError):
    """Configuration is missing, unreadable or invalid."""

    code = "CONFIG_INVALID"
    hint = "Fix the configuration file or environment variable named in the message."

    def __init__(
        self,
        message: str,
        *,
        path: str | None = None,
        key: str | None = None,
        code: str | None = None,
        hint: str | None = None,
    ):
        where = ""
        if path:
            where += f"{path}: "
        if key:
            where += f"[{key}] "
        super().__init__(f"{where}{message}", code=code, hint=hint, path=path, key=key)
        self.path = path
        self.key = key


class SecretError(ConfigError):
    """The approval-token secret is missing or too short."""

    code = "SECRET_INVALID"
    hint = "Set CODE_MODE_SECRET (or code_mode.token_secret) to a random string of at least 32 characters."


class SchemaError(SqlmodeError):
    code = "SCHEMA_ERROR"
    hint = "Check that the database is reachable and the configured tables exist."


class AnalysisError(SqlmodeError):
    code = "ANALYSIS_FAILED"
    hint = "Simplify the query; the analyzer refuses what it cannot fully understand."


class AnalysisTimeoutError(AnalysisError):
    """The analysis ran past its deadline (``server.analysis_timeout_ms``): refused, never a pass."""

    code = "ANALYSIS_TIMEOUT"
    hint = (
        "The query took too long to analyze, so it was refused. Write it more simply: fewer OR/IN terms "
        "(use IN (...) or a join), fewer nested expressions."
    )


class PolicyError(SqlmodeError):
    code = "POLICY_INVALID"
    hint = "Run `sqlmode policy check` to see which policy file and line is wrong."


class ApprovalError(SqlmodeError):
    """The code was refused at validation time, so it cannot be executed."""

    code = "NOT_APPROVED"
    hint = "Call validate_code, fix every violation it reports, then execute with the new token."

    def __init__(self, message: str, *, violations: list[Any] | None = None, **kw: Any):
        super().__init__(message, **kw)
        self.violations = violations or []


class ApprovalPending(ApprovalError):
    """The code needs a human approver who has not decided yet; ``data`` holds id, url, approvers."""

    code = "APPROVAL_PENDING"
    hint = (
        "Show the user the approval link, then call execute_code again with the same code and token: "
        "it waits for the decision and runs once approved."
    )


class HumanApprovalError(ApprovalError):
    """A human approval request refused, expired, used, or a decision that is not allowed."""

    code = "APPROVAL_DENIED"
    hint = "An approver refused this query; nothing was run. Ask the user what they want changed."


class TokenError(SqlmodeError):
    code = "TOKEN_INVALID"
    hint = "Call validate_code again for this exact code and use the approval_token it returns."


class TokenMalformedError(TokenError):
    code = "TOKEN_MALFORMED"
    hint = "Pass the approval_token exactly as validate_code returned it, without edits or quotes."


class TokenUnknownKeyError(TokenError):
    code = "TOKEN_UNKNOWN_KEY"
    hint = "The signing key was rotated out; call validate_code again to get a fresh token."


class TokenSignatureError(TokenError):
    code = "TOKEN_BAD_SIGNATURE"
    hint = (
        "The token was altered, or the server's token secret changed since it was issued: pass it "
        "exactly as validate_code returned it, or call validate_code again."
    )


class TokenExpiredError(TokenError):
    code = "TOKEN_EXPIRED"
    hint = "Approval tokens are short-lived; call validate_code again and execute promptly."


class TokenCodeMismatchError(TokenError):
    code = "TOKEN_CODE_MISMATCH"
    hint = (
        "The token approves different code. Execute exactly the normalized_code it was issued for, "
        "or validate the new code."
    )


class TokenPrincipalMismatchError(TokenError):
    code = "TOKEN_USER_MISMATCH"
    hint = "A token is valid only for the user and session that validated the code; validate it again here."


class TokenSchemaChangedError(TokenError):
    code = "TOKEN_SCHEMA_CHANGED"
    hint = "The visible schema changed since validation; re-read the schema and validate again."


class TokenPolicyChangedError(TokenError):
    code = "TOKEN_POLICY_CHANGED"
    hint = "The policies changed since validation; validate the code again under the current policy."


class TokenScopeChangedError(TokenError):
    code = "TOKEN_SCOPE_CHANGED"
    hint = (
        "The query's action or risk level is no longer what the token approved; "
        "validate the code again and show the user the new explanation."
    )


class TokenInstanceError(TokenError):
    code = "TOKEN_OTHER_INSTANCE"
    hint = (
        "The token was issued by another server process or before a restart, and this server keeps "
        "no shared state; call validate_code again here."
    )


class TokenReplayError(TokenError):
    code = "TOKEN_ALREADY_USED"
    hint = "Each approval token runs once; call validate_code again to run the query again."


class ExecutionError(SqlmodeError):
    code = "EXECUTION_FAILED"
    hint = "Read the database's message, fix the SQL, and validate it again."


class QueryTimeoutError(ExecutionError):
    code = "QUERY_TIMEOUT"
    hint = "The query ran past its time limit. Filter earlier, aggregate more, or narrow the date range."


class QueryCancelledError(ExecutionError):
    code = "QUERY_CANCELLED"
    hint = "The query was cancelled before it finished; run it again if it is still needed."


class PermissionDeniedError(ExecutionError):
    code = "PERMISSION_DENIED"
    hint = "The database role may not read that object; use only tables and columns from the schema resource."


class DatabaseUnavailableError(ExecutionError):
    code = "DATABASE_UNAVAILABLE"
    hint = "The database could not be reached; try again shortly. Nothing was run."


class NotAQueryError(ExecutionError):
    """The executor refused the text before running it: not exactly one row-returning query."""

    code = "NOT_A_QUERY"
    hint = "Send exactly one SELECT (or WITH ... SELECT, VALUES, TABLE) statement and nothing else."


class WriteLimitExceededError(ExecutionError):
    code = "WRITE_LIMIT_EXCEEDED"
    hint = "The statement would change more rows than allowed and was rolled back; narrow its WHERE clause."


class StateError(SqlmodeError):
    code = "STATE_UNAVAILABLE"
    hint = "The shared state store (state.url) could not be used, so nothing was run. Tell an administrator."


class AuditError(SqlmodeError):
    code = "AUDIT_FAILED"
    hint = "The audit log could not be written, so nothing was run. Tell an administrator."


class AuthError(SqlmodeError):
    code = "AUTH_FAILED"
    hint = "Send a valid bearer token in the Authorization header."


class RateLimitedError(SqlmodeError):
    """A per-principal limit ([server]) was reached; ``retry_after`` seconds until it frees up."""

    code = "RATE_LIMITED"
    hint = "Too many requests from this credential: wait the number of seconds given, then try again."

    def __init__(self, message: str, *, retry_after: int, hint: str | None = None):
        super().__init__(f"{message} Retry after {retry_after} s.", hint=hint, retry_after=retry_after)
        self.retry_after = retry_after
