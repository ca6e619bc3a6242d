"""The server's own health: its instance row and heartbeat, and the stores' write probes."""
