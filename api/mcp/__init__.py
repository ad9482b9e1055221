"""The MCP server: governed runbooks for AI assistants (docs/decisions/0020-mcp-server.md).

A transport over the services in `ddoc/`, like the API's routes: streamable HTTP at `/mcp`,
authenticated with an API key whose role bounds what the assistant may do; `ddoc mcp` is a
stdio bridge to it (ddoc/cli/mcp.py).
"""
