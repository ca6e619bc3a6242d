"""Knowledge: bases of the company's own documents that agents search, citing their sources."""
