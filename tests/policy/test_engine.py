"""The Cedar evaluator: caching, reloading on change, failing closed, the policy hash."""

from __future__ import annotations

import logging
import os
import shutil
from pathlib import Path

import pytest

from sqlmode.errors import PolicyError
from sqlmode.models import Action, Principal
from sqlmode.policy import (
    CedarEvaluator,
    NoopEvaluator,
    PolicyEvaluator,
    build_evaluator,
    principal_from_config,
)

from .conftest import POLICIES, analysis_from, policy_settings

ANN = Principal("ann", ("analysts",), "s1")
READ_ORDERS = analysis_from({"tables": ["orders"], "columns": ["orders.id"], "row_limit": 10})
READ_TICKETS = analysis_from(
    {"tables": ["support_tickets"], "columns": ["support_tickets.id"], "row_limit": 10}
)

FORBID_TICKETS = """
@id("custom.no-tickets")
@code("TABLE_NOT_ALLOWED")
@reason("No tickets today.")
@hint("Ask tomorrow.")
forbid (principal, action, resource in Table::"support_tickets");
"""


def _touch_later(path: Path) -> None:
    """Make sure the change is visible to an mtime check even on coarse clocks."""
    st = path.stat()
    os.utime(path, ns=(st.st_atime_ns, st.st_mtime_ns + 1_000_000_000))


def test_build_evaluator_picks_cedar_or_noop(caplog: pytest.LogCaptureFixture) -> None:
    cedar = build_evaluator(policy_settings())
    assert isinstance(cedar, CedarEvaluator) and isinstance(cedar, PolicyEvaluator)
    with caplog.at_level(logging.WARNING):
        noop = build_evaluator(policy_settings({"policy": {"evaluator": "noop"}}))
    assert isinstance(noop, NoopEvaluator) and isinstance(noop, PolicyEvaluator)
    assert "disabled" in caplog.text
    write = analysis_from({"action": "write", "tables": ["orders"]})
    d = noop.evaluate(ANN, write)
    assert d.allowed and d.policy_ids == ("noop",)
    assert noop.policy_hash != cedar.policy_hash


def test_policy_set_is_parsed_once_and_reused() -> None:
    ev = CedarEvaluator(policy_settings())
    first = ev.loaded
    for _ in range(5):
        assert ev.evaluate(ANN, READ_ORDERS).allowed
    assert ev.loaded is first and ev.loaded.policy_set is first.policy_set


def test_custom_file_change_is_picked_up_and_changes_the_hash(tmp_path: Path) -> None:
    custom = tmp_path / "custom.cedar"
    custom.write_text("// nothing yet\n")
    ev = CedarEvaluator(policy_settings({"policy": {"paths": [str(custom)]}}), check_interval=0)
    before = ev.policy_hash
    assert ev.evaluate(ANN, READ_TICKETS).allowed

    custom.write_text(FORBID_TICKETS)
    _touch_later(custom)
    d = ev.evaluate(ANN, READ_TICKETS)
    assert not d.allowed and d.policy_ids == ("custom.no-tickets",)
    assert d.violations[0].code == "TABLE_NOT_ALLOWED" and d.violations[0].hint == "Ask tomorrow."
    assert ev.policy_hash != before


def test_new_file_in_a_policy_folder_is_picked_up(tmp_path: Path) -> None:
    folder = tmp_path / "policies.d"
    folder.mkdir()
    ev = CedarEvaluator(policy_settings({"policy": {"paths": [str(folder)]}}), check_interval=0)
    assert ev.evaluate(ANN, READ_TICKETS).allowed
    (folder / "sub").mkdir()
    _touch_later(folder)
    assert ev.evaluate(ANN, READ_TICKETS).allowed
    (folder / "sub" / "a.cedar").write_text(FORBID_TICKETS)
    _touch_later(folder / "sub")
    assert not ev.evaluate(ANN, READ_TICKETS).allowed


def test_reload_check_seconds_throttles_stat_calls(tmp_path: Path) -> None:
    custom = tmp_path / "c.cedar"
    custom.write_text("")
    ev = CedarEvaluator(policy_settings({"policy": {"paths": [str(custom)], "reload_check_seconds": 3600}}))
    custom.write_text(FORBID_TICKETS)
    _touch_later(custom)
    assert ev.evaluate(ANN, READ_TICKETS).allowed  # not checked yet
    ev.reload()
    assert not ev.evaluate(ANN, READ_TICKETS).allowed


def test_broken_reload_refuses_everything_until_fixed(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    custom = tmp_path / "custom.cedar"
    custom.write_text(FORBID_TICKETS)
    ev = CedarEvaluator(policy_settings({"policy": {"paths": [str(custom)]}}), check_interval=0)
    good_hash = ev.policy_hash

    custom.write_text(FORBID_TICKETS.replace("forbid (", "forbidd ("))
    _touch_later(custom)
    with caplog.at_level(logging.ERROR):
        d = ev.evaluate(ANN, READ_ORDERS)
    assert not d.allowed and d.violations[0].code == "POLICY_INVALID"
    assert str(custom) in d.violations[0].message and "refusing" in caplog.text
    assert ev.policy_hash.startswith("invalid:") and ev.policy_hash != good_hash

    custom.write_text(FORBID_TICKETS)
    _touch_later(custom)
    assert ev.evaluate(ANN, READ_ORDERS).allowed
    assert ev.policy_hash == good_hash


def test_deleted_custom_file_refuses_everything(tmp_path: Path) -> None:
    custom = tmp_path / "custom.cedar"
    custom.write_text(FORBID_TICKETS)
    ev = CedarEvaluator(policy_settings({"policy": {"paths": [str(custom)]}}), check_interval=0)
    custom.unlink()
    d = ev.evaluate(ANN, READ_ORDERS)
    assert not d.allowed and d.violations[0].code == "POLICY_INVALID"


def test_start_up_with_broken_policies_raises_naming_file_and_line(tmp_path: Path) -> None:
    custom = tmp_path / "bad.cedar"
    bad = FORBID_TICKETS.replace('resource in Table::"support_tickets")', "resource) when { context.nope }")
    custom.write_text("// header\n" + bad)  # the policy starts on line 3
    with pytest.raises(PolicyError) as e:
        CedarEvaluator(policy_settings({"policy": {"paths": [str(custom)]}}))
    assert f"{custom}:3" in str(e.value) and "nope" in str(e.value)


def test_missing_custom_path_is_an_error(tmp_path: Path) -> None:
    with pytest.raises(PolicyError, match="does not exist"):
        build_evaluator(policy_settings({"policy": {"paths": [str(tmp_path / "missing.cedar")]}}))


def test_policy_hash_follows_the_config() -> None:
    a = CedarEvaluator(policy_settings()).policy_hash
    b = CedarEvaluator(policy_settings()).policy_hash
    c = CedarEvaluator(policy_settings({"code_mode": {"blocked_tables": ["orders"]}})).policy_hash
    d = CedarEvaluator(policy_settings({"code_mode": {"cedar_policies": {"max_depth": 3}}})).policy_hash
    assert a == b and len({a, c, d}) == 3


def test_schema_change_reloads(tmp_path: Path) -> None:
    base = tmp_path / "policies"
    shutil.copytree(POLICIES, base)
    ev = CedarEvaluator(policy_settings(), base_dir=base, check_interval=0)
    before = ev.policy_hash
    schema = base / "sqlmode.cedarschema"
    schema.write_text(schema.read_text() + "\n// a comment changes the hash\n")
    _touch_later(schema)
    assert ev.policy_hash != before


def test_evaluation_error_fails_closed(tmp_path: Path) -> None:
    """Cedar skips a policy that errors at run time; sqlmode must refuse instead."""
    custom = tmp_path / "overflow.cedar"
    custom.write_text(
        '@id("custom.overflow")\n@reason("r")\n'
        "forbid (principal, action, resource) when { context.depth * 9223372036854775807 > 1 };\n"
    )
    ev = CedarEvaluator(policy_settings({"policy": {"paths": [str(custom)]}}))
    deep = analysis_from({"tables": ["orders"], "depth": 2, "row_limit": 10})
    d = ev.evaluate(ANN, deep)
    assert not d.allowed and d.violations[0].code == "POLICY_ERROR"


def test_default_deny_without_any_permit_explains_itself(tmp_path: Path) -> None:
    """A baseline without permit-read: Cedar denies by default, with no deciding policy."""
    base = tmp_path / "policies"
    shutil.copytree(POLICIES, base)
    (base / "baseline.cedar").write_text(
        '@id("only") @reason("r") forbid (principal, action == Action::"admin", resource);\n'
    )
    d = CedarEvaluator(policy_settings(), base_dir=base).evaluate(ANN, READ_ORDERS)
    assert not d.allowed and d.policy_ids == ()
    assert d.violations[0].code == "POLICY_DENIED" and "ann" in d.violations[0].message


def test_groups_come_from_config_and_principal() -> None:
    s = policy_settings(
        {
            "policy": {
                "paths": ["examples/analysts.cedar"],
                "users": {"ann": {"groups": ["analysts"]}},
                "default_user": "ann",
            }
        }
    )
    ev = CedarEvaluator(s)
    assert not ev.evaluate(Principal("ann"), READ_TICKETS).allowed  # groups from config
    assert not ev.evaluate(Principal("zoe", ("analysts",)), READ_TICKETS).allowed  # from the caller
    assert ev.evaluate(Principal("zoe"), READ_TICKETS).allowed
    p = principal_from_config(s, session="s9")
    assert p == Principal("ann", ("analysts",), "s9")


def test_unusual_identifiers_are_data_not_syntax() -> None:
    """Users, groups and table names with quotes or Cedar syntax cannot change a decision."""
    s = policy_settings(
        {"code_mode": {"blocked_tables": ['we"ird\\name']}, "policy": {"paths": ["examples"]}}
    )
    ev = CedarEvaluator(s)
    weird = analysis_from({"tables": ['we"ird\\name'], "row_limit": 10})
    d = ev.evaluate(Principal('x" in Group::"pii_readers'), weird)
    assert not d.allowed and d.policy_ids == ('server.blocked-table.we"ird\\name',)
    pii = analysis_from({"tables": ["customers"], "columns": ["customers.email"], "row_limit": 10})
    assert not ev.evaluate(Principal('x" in Group::"pii_readers'), pii).allowed
    assert ev.evaluate(Principal("x", ("pii_readers",)), pii).allowed


def test_unknown_action_is_refused_even_with_a_broad_permit(tmp_path: Path) -> None:
    custom = tmp_path / "broad.cedar"
    custom.write_text('@id("custom.everything") permit (principal, action, resource);\n')
    ev = CedarEvaluator(policy_settings({"policy": {"paths": [str(custom)]}}))
    for action in (Action.UNKNOWN, Action.ADMIN):
        d = ev.evaluate(ANN, analysis_from({"action": action.value}))
        assert not d.allowed and d.violations[0].code == "STATEMENT_NOT_ALLOWED"


def test_policy_change_invalidates_outstanding_tokens(tmp_path: Path) -> None:
    """A token minted under the old policy set is refused once a policy file changes."""
    from sqlmode.errors import TokenPolicyChangedError
    from sqlmode.token import TokenService, code_hash

    custom = tmp_path / "custom.cedar"
    custom.write_text("")
    ev = CedarEvaluator(policy_settings({"policy": {"paths": [str(custom)]}}), check_interval=0)
    tokens = TokenService("k" * 32)
    h = code_hash("SELECT id FROM support_tickets")
    token, _ = tokens.mint(
        code_hash=h, user="ann", session="s1", schema_hash="s", policy_hash=ev.policy_hash,
        action="read", risk="low",
    )  # fmt: skip
    custom.write_text(FORBID_TICKETS)
    _touch_later(custom)
    with pytest.raises(TokenPolicyChangedError):
        tokens.verify(
            token, code_hash=h, user="ann", session="s1", schema_hash="s", policy_hash=ev.policy_hash
        )
    assert not ev.evaluate(ANN, READ_TICKETS).allowed  # and the re-check refuses the code
