"""Memory (issue 18): conversation summaries and memories about the person."""
