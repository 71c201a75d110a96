"""Command-line interface: parse, call the library, report."""

__all__: list[str] = []
