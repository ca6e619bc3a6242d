"""Fault injection with Jepsen-style counts: real server, real SecantusDB, real SQL.

``python -m tools.faults`` runs every scenario and prints, per scenario, how many
requests were attempted and acknowledged, how many acknowledged ones were lost or duplicated,
anything unexpected, and how long the stores took to converge after healing. Test tooling: the
product never imports it.
"""
