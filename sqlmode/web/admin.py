"""``/admin`` for the approvers group: approvals pending and decided, the audit log's tail with its
``audit verify`` status, and the effective policy set. Plain server-rendered HTML."""

from __future__ import annotations

import html
import json
from collections import deque
from pathlib import Path
from typing import Any

from ..audit import verify_configured
from ..service import CodeModeService

__all__ = ["admin_html"]

_AUDIT_TAIL = 50
PAGE_SIZE = 100  # approval requests a page, newest first; ?page=1 the next older ones


def _audit_tail(service: CodeModeService) -> list[dict[str, Any]]:
    s = service.settings
    if not s.audit.enabled or not s.audit.path:
        return []
    path = s.resolve_path(s.audit.path)
    if not Path(path).exists():
        return []
    with open(path, encoding="utf-8", errors="replace") as f:
        lines = deque(f, maxlen=_AUDIT_TAIL)
    out = []
    for line in reversed(lines):
        try:
            doc = json.loads(line)
        except ValueError:
            continue
        if isinstance(doc, dict):
            out.append(doc)
    return out


async def admin_html(service: CodeModeService, user: str, csrf: str = "", page: int = 0) -> str:
    """The admin page's body for ``user`` (already checked to be an approver); ``csrf``: the cookie
    session's token for the log-out form (empty for a bearer request, which has nothing to log out);
    ``page``: which PAGE_SIZE requests, 0 the newest."""
    e = html.escape
    recs, older = await service.approvals.page(page * PAGE_SIZE, PAGE_SIZE)
    pending = [r for r in recs if r["status"] == "pending"]
    decided = [r for r in recs if r["status"] != "pending"]

    def rows(items: list[dict[str, Any]]) -> str:
        if not items:
            return "<p>none</p>"
        body = "".join(
            f"<tr><td><a href='/approvals/{e(r['id'], quote=True)}'>{e(r['id'][:10])}</a></td>"
            f"<td>{e(r['status'])}</td><td>{e(r['requester'])}</td><td>{e(r['risk'])} {e(r['action'])}</td>"
            f"<td>{e(', '.join(r['tables']))}</td>"
            f"<td>{e(', '.join(d['who'] + ': ' + d['verdict'] for d in r['decisions']))}</td></tr>"
            for r in items
        )
        return (
            "<table><tr><th>id</th><th>status</th><th>requester</th><th>risk</th><th>tables</th>"
            f"<th>decisions</th></tr>{body}</table>"
        )

    report = await verify_configured(service.settings)
    if report.ok:
        verdict = f"intact ({report.records} records, {report.chains} chain(s))"
    elif report.unreadable is not None:
        verdict = f"unreadable: {report.unreadable}"
    else:
        verdict = "TAMPERED: " + "; ".join(report.problems[:3])
    audit_rows = "".join(
        "<tr>"
        + "".join(
            f"<td>{e(str(doc.get(k, '')))}</td>"
            for k in ("at", "event", "user", "decision", "approval_id", "code_hash")
        )
        + "</tr>"
        for doc in _audit_tail(service)
    )
    loaded = getattr(service.evaluator, "loaded", None)
    metas = list(loaded.meta.values()) if loaded is not None else []
    policies = "".join(
        f"<tr><td>{e(m.policy_id)}</td><td>{e(m.effect)}</td><td>{e(m.layer)}</td>"
        f"<td>{e(Path(m.source).name)}:{m.line}</td><td>{e(m.code or '')}</td>"
        f"<td>{e('approval' if m.approval is not None else '')}</td></tr>"
        for m in metas
    )
    return (
        f"<h1>sqlmode admin</h1><p>You are <b>{e(user)}</b>. "
        "<form method='post' action='/logout' style='display:inline'>"
        f"<input type='hidden' name='csrf' value='{e(csrf, quote=True)}'><button>Log out</button></form></p>"
        f"<p id='approvals-page'>Approval requests {page * PAGE_SIZE + 1} to {(page + 1) * PAGE_SIZE}, "
        f"newest first. {_pager(page, older)}</p>"
        f"<h2>Pending approvals</h2>{rows(pending)}<h2>Decided approvals</h2>{rows(decided)}"
        f"<h2>Audit log</h2><p id='audit-verify'>audit verify: {e(verdict)}</p>"
        "<table><tr><th>time</th><th>event</th><th>user</th><th>decision</th><th>approval</th>"
        f"<th>code hash</th></tr>{audit_rows}</table>"
        "<h2>Effective policy set</h2><table><tr><th>id</th><th>effect</th><th>layer</th><th>source</th>"
        f"<th>code</th><th>note</th></tr>{policies}</table>"
    )


def _pager(page: int, older: bool) -> str:
    links = []
    if page > 0:
        links.append(f"<a id='newer' href='/admin?page={page - 1}'>Newer</a>")
    if older:
        links.append(f"<a id='older' href='/admin?page={page + 1}'>Older</a>")
    return " ".join(links)
