"""Command-line tools of `python -m bot` that are neither a service nor a part of one: `make shell`'s terminal chat and
the dependency audit."""
