"""Code the tests share, imported as `helpers.<module>` (pyproject.toml puts tests/ on the path); fixtures live in
tests/conftest.py. No test module imports another test module."""
