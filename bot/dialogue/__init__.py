"""The dialogue's helpers, as plain functions: the answers (knowledge.py), the two-stage fallback (fallback.py) and
when to hand over to a person (handoff.py)."""
