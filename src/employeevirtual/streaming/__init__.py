"""Live turns: the public event model and where a turn's events are kept for followers."""
