"""The published output schemas mean what the models' own JSON schemas mean.

(One difference on purpose: execute_code's ``untrusted`` marker is published as required.)

server.py compacts them (no titles, descriptions, defaults) and writes single-use definitions in
place (no ``$ref``; nullable objects as ``type: [object, null]``) so a client validates each answer
faster. The answers a client receives, and answers broken one field at a time, get the same
verdict from both schemas.
"""

from __future__ import annotations

import copy
import json
from collections.abc import AsyncIterator
from typing import Any

import pytest
from jsonschema.validators import validator_for
from mcp import Client
from pydantic import BaseModel
from referencing import Registry

from sqlmode.models import QueryResult, ValidationResult
from sqlmode.server import _inline_refs, build_server
from sqlmode.service import CodeModeService
from tests.server.conftest import EASY_SQL, task_scoped


@pytest.fixture
async def client(shared_service: CodeModeService) -> AsyncIterator[Client]:
    async with task_scoped(Client(build_server(shared_service))) as c:
        yield c


def _valid(schema: dict[str, Any], instance: Any) -> bool:
    return validator_for(schema)(schema, registry=Registry()).is_valid(instance)


def _broken(answer: dict[str, Any]) -> list[tuple[str, dict[str, Any]]]:
    """The answer with one field at a time replaced by a value of the wrong kind, or removed."""
    out = []
    for key, value in answer.items():
        for wrong in ("x", 7, None, [1], {"a": 1}, True):
            if type(wrong) is type(value) or (wrong is None and value is None):
                continue
            out.append((f"{key}={wrong!r}", {**answer, key: wrong}))
        out.append((f"without {key}", {k: v for k, v in answer.items() if k != key}))
    return out


def _nested(answer: dict[str, Any], key: str, value: Any) -> dict[str, Any]:
    changed = copy.deepcopy(answer)
    changed[key] = value
    return changed


async def test_published_schemas_give_the_models_verdicts(client: Client) -> None:
    tools = {t.name: t for t in (await client.list_tools()).tools}
    v = await client.call_tool("validate_code", {"code": EASY_SQL})
    sc = v.structured_content
    assert sc is not None and sc["is_valid"]
    r = await client.call_tool(
        "execute_code", {"code": sc["normalized_code"], "approval_token": sc["approval_token"]}
    )
    assert r.structured_content is not None
    cases: list[tuple[str, type[BaseModel], dict[str, Any]]] = [
        ("validate_code", ValidationResult, sc),
        ("execute_code", QueryResult, r.structured_content),
    ]
    approval = {"approvers": "admins", "required": 2, "expires_seconds": 60}
    ticket = {"id": "a1", "url": "http://x/a1", "approvers": "admins", "required": 1}
    checked = 0
    for name, model, answer in cases:
        published = tools[name].output_schema
        assert published is not None and "$ref" not in json.dumps(published)
        own = model.model_json_schema(mode="serialization")
        if name == "execute_code":  # published as required on purpose: the marker is always there
            own["required"] = ["untrusted", *own["required"]]
        variants = [("as answered", answer), *_broken(answer)]
        if name == "validate_code":
            variants += [
                ("approval object", _nested(answer, "approval", approval)),
                ("approval missing a field", _nested(answer, "approval", {"approvers": "admins"})),
                ("unknown risk level", _nested(answer, "risk_level", "extreme")),
                ("violation without message", _nested(answer, "violations", [{"code": "X"}])),
                ("violation", _nested(answer, "violations", [{"code": "X", "message": "m", "hint": "h"}])),
            ]
        else:
            variants += [
                ("ticket", _nested(answer, "approval_required", ticket)),
                ("ticket missing its url", _nested(answer, "approval_required", {"id": "a1"})),
                ("column without type", _nested(answer, "columns", [{"name": "n"}])),
            ]
        for label, instance in variants:
            assert _valid(published, instance) == _valid(own, instance), (name, label)
            checked += 1
        assert _valid(published, answer)
    assert checked > 60


def test_inlining_keeps_shared_and_recursive_definitions() -> None:
    schema: dict[str, Any] = {
        "$defs": {
            "Shared": {"type": "string"},
            "Once": {"type": "object", "properties": {"s": {"$ref": "#/$defs/Shared"}}},
            "Tree": {"type": "object", "properties": {"kids": {"items": {"$ref": "#/$defs/Tree"}}}},
        },
        "type": "object",
        "properties": {
            "a": {"$ref": "#/$defs/Shared"},
            "b": {"$ref": "#/$defs/Once"},
            "t": {"$ref": "#/$defs/Tree"},
            "n": {"anyOf": [{"$ref": "#/$defs/Once"}, {"type": "null"}]},
        },
    }
    out = _inline_refs(schema)
    assert set(out["$defs"]) == {"Shared", "Tree", "Once"}  # Once is used twice: kept
    schema["properties"].pop("n")
    out = _inline_refs(schema)
    assert set(out["$defs"]) == {"Shared", "Tree"}
    assert out["properties"]["b"] == {"type": "object", "properties": {"s": {"$ref": "#/$defs/Shared"}}}
    for instance, ok in [
        ({"a": "x", "b": {"s": "y"}, "t": {"kids": [{"kids": []}]}}, True),
        ({"b": {"s": 1}}, False),
    ]:
        assert _valid(out, instance) is ok and _valid(schema, instance) is ok
