"""Tools from MCP servers: registration, outbound rules, secrets at rest, bounded calls."""
