"""What the model has to read: bytes and an LLM-token estimate of sqlmode's MCP answers.

Measured through a real in-process MCP client on the sample warehouse (DuckDB):
- the tool surface: what a client puts in the model's context for each tool (its name, description
  and input schema: the MCP clients we know hand the model nothing else of a tool; target <= 2,500
  bytes), and beside it the whole ``list_tools`` answer as JSON (output schemas and annotations
  too: what the client itself reads once a session);
- a 100-row x 5-column ``execute_code`` result: the text content the model reads (target <= 6,000
  bytes), the structured content, and the whole result as JSON; beside it, the same
  rows in encodings other servers use (JSON objects per row, a markdown table), computed from the
  same result, as the comparison that picked the encoding;
- the schema resource ``schema://{database}``, the ``start_code_mode`` prompt and a validate_code answer.

Token estimate: ``bytes / 4`` (the usual rule of thumb for English and code with BPE tokenizers),
and beside it a lower bound: the number of pieces a cl100k-style pre-tokenizer regex splits the
text into (every BPE token lies within one piece, so the real count is at least that).

    python benchmarks/bench_payload.py
"""

from __future__ import annotations

import json
import re
from typing import Any

from common import Results, Target
from env import BenchEnv
from mcp import Client

from sqlmode.server import build_server
from sqlmode.service import CodeModeService

GROUP = "payload"
ROWS_SQL = "SELECT id, customer_id, status, total, created_at FROM orders ORDER BY id LIMIT 100"
TYPICAL_SQL = (
    "SELECT c.region, count(*) AS orders, sum(o.total) AS revenue FROM orders AS o "
    "JOIN customers AS c ON c.id = o.customer_id WHERE o.status = 'completed' "
    "GROUP BY c.region ORDER BY revenue DESC"
)
T_TOOLS = Target("<=", 2500, "bytes", "design target")
T_RESULT = Target("<=", 6000, "bytes", "design target")

# cl100k's pre-tokenizer, with \p{L} / \p{N} approximated by Python's classes.
_PIECES = re.compile(
    r"'(?i:[sdmt]|ll|ve|re)|[^\r\n\w]?[^\W\d_]+|\d{1,3}| ?[^\s\w]+[\r\n]*|\s*[\r\n]+|\s+(?!\S)|\s+|_+"
)


def tokens_estimate(text: str) -> dict[str, int]:
    """``bytes/4`` estimate and the pre-tokenizer lower bound for ``text``."""
    n = len(text.encode("utf-8"))
    return {"bytes": n, "tokens_bytes_div_4": round(n / 4), "tokens_lower_bound": len(_PIECES.findall(text))}


def _json_bytes(obj: Any) -> int:
    return len(json.dumps(obj, ensure_ascii=False, separators=(",", ":")).encode("utf-8"))


def _wire(model: Any) -> Any:
    return model.model_dump(mode="json", by_alias=True, exclude_none=True)


def alternative_encodings(structured: dict[str, Any]) -> dict[str, int]:
    """Bytes of the same rows as other servers send them (for the comparison, not used by sqlmode)."""
    cols = [c["name"] for c in structured["columns"]]
    rows = structured["rows"]
    objects = [dict(zip(cols, r, strict=False)) for r in rows]
    md = ["| " + " | ".join(cols) + " |", "|" + "---|" * len(cols)]
    md += ["| " + " | ".join("" if v is None else str(v) for v in r) + " |" for r in rows]
    csv_lines = [",".join(cols)] + [",".join("" if v is None else str(v) for v in r) for r in rows]
    return {
        "json_objects_pretty": len(json.dumps(objects, indent=2, default=str).encode()),
        "json_objects_compact": _json_bytes(objects),
        "markdown_table": len("\n".join(md).encode()),
        "csv_no_types": len("\n".join(csv_lines).encode()),
    }


def _text_of(result: Any) -> str:
    return "\n".join(getattr(c, "text", "") for c in result.content)


async def run(env: BenchEnv, results: Results) -> None:
    settings = env.settings("duckdb")
    async with CodeModeService(settings) as service, Client(build_server(service)) as client:
        tools = await client.list_tools()
        tools_json = _wire(tools).get("tools", [])
        per_tool = {t["name"]: _json_bytes(t) for t in tools_json}
        estimate = tokens_estimate(json.dumps(tools_json))
        results.add(
            "payload.list_tools",
            GROUP,
            f"list_tools answer as JSON ({len(tools_json)} tools, output schemas included)",
            value=_json_bytes(tools_json),
            unit="bytes",
            per_tool=per_tool,
            tokens_bytes_div_4=estimate["tokens_bytes_div_4"],
            tokens_lower_bound=estimate["tokens_lower_bound"],
        )
        # The output schemas are for the client (it checks structured results against them); a client
        # builds the model's tool definitions from name, description and input schema.
        model_view = [{k: t[k] for k in ("name", "description", "inputSchema") if k in t} for t in tools_json]
        seen = tokens_estimate(json.dumps(model_view))
        results.add(
            "payload.tool_surface",
            GROUP,
            f"tool surface the model reads ({len(model_view)} tools: name, description, input schema)",
            value=_json_bytes(model_view),
            unit="bytes",
            target=T_TOOLS,
            per_tool={t["name"]: _json_bytes(t) for t in model_view},
            tokens_bytes_div_4=seen["tokens_bytes_div_4"],
            tokens_lower_bound=seen["tokens_lower_bound"],
        )

        v = await client.call_tool("validate_code", {"code": ROWS_SQL})
        sv = v.structured_content or {}
        if v.is_error or not sv.get("approval_token"):
            results.error("bench_payload", f"validate_code refused the 100-row query: {_text_of(v)[:300]}")
            return
        r = await client.call_tool(
            "execute_code", {"code": sv["normalized_code"], "approval_token": sv["approval_token"]}
        )
        text = _text_of(r)
        structured = r.structured_content or {}
        est = tokens_estimate(text)
        shape = f"{structured.get('row_count')} rows x {len(structured.get('columns', []))} columns"
        results.add(
            "payload.result100.text",
            GROUP,
            f"execute_code text the model reads, {shape}",
            value=est["bytes"],
            unit="bytes",
            target=T_RESULT,
            tokens_bytes_div_4=est["tokens_bytes_div_4"],
            tokens_lower_bound=est["tokens_lower_bound"],
            alternatives=alternative_encodings(structured) if structured.get("rows") else {},
            sample=text[:400],
        )
        results.add(
            "payload.result100.structured",
            GROUP,
            "execute_code structured content (JSON), same result",
            value=_json_bytes(structured),
            unit="bytes",
        )
        results.add(
            "payload.result100.wire",
            GROUP,
            "execute_code whole CallToolResult as JSON (text + structured)",
            value=_json_bytes(_wire(r)),
            unit="bytes",
            note="both forms travel; a client shows the model one or the other",
        )

        v2 = await client.call_tool("validate_code", {"code": TYPICAL_SQL})
        est_v = tokens_estimate(_text_of(v2))
        results.add(
            "payload.validate.text",
            GROUP,
            "validate_code text, typical query",
            value=est_v["bytes"],
            unit="bytes",
            tokens_bytes_div_4=est_v["tokens_bytes_div_4"],
            tokens_lower_bound=est_v["tokens_lower_bound"],
        )

        db = settings.server.name
        res = await client.read_resource(f"schema://{db}")
        schema_text = "".join(getattr(c, "text", "") for c in res.contents)
        est_s = tokens_estimate(schema_text)
        n_tables = len((await service.schema()).bounded().tables)
        results.add(
            "payload.schema",
            GROUP,
            f"schema resource schema://{db} ({n_tables} tables)",
            value=est_s["bytes"],
            unit="bytes",
            headline=True,
            tokens_bytes_div_4=est_s["tokens_bytes_div_4"],
            tokens_lower_bound=est_s["tokens_lower_bound"],
        )
        prompt = await client.get_prompt("start_code_mode")
        ptext = "\n".join(getattr(m.content, "text", "") for m in prompt.messages)
        est_p = tokens_estimate(ptext)
        results.add(
            "payload.prompt",
            GROUP,
            "start_code_mode prompt (includes the schema)",
            value=est_p["bytes"],
            unit="bytes",
            tokens_bytes_div_4=est_p["tokens_bytes_div_4"],
            tokens_lower_bound=est_p["tokens_lower_bound"],
        )


if __name__ == "__main__":
    from env import standalone

    standalone(run, __doc__)
