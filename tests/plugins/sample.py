"""Fixtures: see module docstring once implemented."""
