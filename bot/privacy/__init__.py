"""Personal data: redaction of what is stored (redaction.py) and how long it is kept (retention.py, `purge`)."""
