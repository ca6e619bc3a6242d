"""The export's human-readable side: one Markdown file per conversation."""

from __future__ import annotations

from typing import Any

from pydantic_core import to_json

__all__ = ["markdown_header", "markdown_message"]


def markdown_header(conversation: dict[str, Any]) -> str:
    title = conversation.get("title") or "(untitled)"
    return (
        f"# {title}\n\n"
        f"- conversation: `{conversation['id']}`\n"
        f"- agent: `{conversation['agent_id']}`\n"
        f"- status: {conversation['status']}\n"
        f"- created: {conversation['created_at'].isoformat()}\n"
        f"- messages: {conversation['message_count']}\n\n"
    )


def markdown_message(message: dict[str, Any]) -> str:
    who = {"user": "You", "agent": "Agent", "error": "Error"}.get(
        message["message_type"], message["message_type"]
    )
    at = message["created_at"].isoformat()
    body = str(message["content"]).replace("\n", "\n> ") if who == "Error" else message["content"]
    extra = ""
    meta = message.get("message_metadata") or {}
    for key in ("tool_calls", "sources"):
        if meta.get(key):
            extra += f"\n\n<details><summary>{key}</summary>\n\n```json\n"
            extra += to_json(meta[key], indent=2).decode() + "\n```\n</details>"
    return f"## {who} · #{message['seq']} · {at}\n\n{body}{extra}\n\n"
