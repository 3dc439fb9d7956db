"""The explorer: ipywidgets that scrub through an online backfill (:mod:`.widget`), over the
library's experiment or your own upgrade's embeddings (:mod:`.data`)."""

from .data import ExplorerData
from .widget import BackfillExplorer

__all__ = ["BackfillExplorer", "ExplorerData"]
