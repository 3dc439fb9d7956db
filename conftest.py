"""Marks every notebook cell that nbval collects (``--nbval-lax``) with ``notebooks``, so
``-m notebooks`` selects them and ``-m "not notebooks"`` leaves them out."""

import pytest


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    for item in items:
        if item.path.suffix == ".ipynb":
            item.add_marker(pytest.mark.notebooks)
