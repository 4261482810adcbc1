"""tests/plugin: pytester is enabled by tests/conftest.py (pytest refuses pytest_plugins in a nested conftest)."""
