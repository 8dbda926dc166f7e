"""`python -m bot report`: containment, fallback, handoff and suggestion outcomes (report.py)."""
