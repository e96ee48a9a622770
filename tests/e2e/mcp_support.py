"""Test support for the MCP server: the SDK's own client over Streamable HTTP or stdio."""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator, Mapping
from typing import Any

import httpx2
import orjson
from mcp import Client
from mcp.client.stdio import StdioServerParameters
from mcp.client.streamable_http import streamable_http_client
from mcp_types import CallToolResult, TextContent

TOOLS = {
    "list_conversations",
    "get_conversation",
    "get_messages",
    "take_over",
    "return_to_bot",
    "send_message",
    "search_messages",
    "add_note",
}


@contextlib.asynccontextmanager
async def http_client(base_url: str, token: str | None) -> AsyncIterator[Client]:
    """An MCP client on `<base_url>/mcp`, sending `token` as a bearer token."""
    headers = {"Authorization": f"Bearer {token}"} if token is not None else {}
    timeout = httpx2.Timeout(30.0, read=60.0)
    async with (
        httpx2.AsyncClient(headers=headers, timeout=timeout) as http,
        Client(streamable_http_client(f"{base_url}/mcp", http_client=http)) as client,
    ):
        yield client


@contextlib.asynccontextmanager
async def stdio_client(python: str, env: Mapping[str, str]) -> AsyncIterator[Client]:
    """An MCP client that starts `python -m services.console mcp --stdio` with `env`."""
    params = StdioServerParameters(
        command=python, args=["-m", "services.console", "mcp", "--stdio"], env=dict(env)
    )
    async with Client(params) as client:
        yield client


def _text(result: CallToolResult) -> str:
    return "".join(block.text for block in result.content if isinstance(block, TextContent))


async def call(client: Client, tool: str, arguments: dict[str, Any]) -> dict[str, Any]:
    """The tool's structured result; fails the test if the tool refused."""
    result = await client.call_tool(tool, arguments)
    assert not result.is_error, f"{tool} refused: {_text(result)}"
    assert result.structured_content is not None
    return dict(result.structured_content)


async def refusal(client: Client, tool: str, arguments: dict[str, Any]) -> dict[str, Any]:
    """The tool's refusal (its JSON error); fails the test if the tool succeeded."""
    result = await client.call_tool(tool, arguments)
    assert result.is_error, f"{tool} did not refuse: {result.structured_content}"
    text = _text(result)
    try:
        body = orjson.loads(text)
    except orjson.JSONDecodeError as exc:
        raise AssertionError(f"{tool} refused without a JSON reason: {text!r}") from exc
    assert isinstance(body, dict)
    return body
