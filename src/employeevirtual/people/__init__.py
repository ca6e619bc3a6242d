"""People's data: search, export, erasure and retention across every store."""
