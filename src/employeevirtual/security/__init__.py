"""Framework-light security building blocks: rate limiting, login throttling, API keys
and password policy."""
