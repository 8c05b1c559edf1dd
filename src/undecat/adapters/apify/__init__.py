"""Apify adapters: the task-run source, the export-file source and the item mapping."""

from undecat.adapters.apify.files import FileCatalogSource, FileRun
from undecat.adapters.apify.items import InditexItemMapper, UnreadableItem, mapper_for
from undecat.adapters.apify.options import CollectOptions
from undecat.adapters.apify.source import ApifyCatalogSource, ApifyRun

__all__ = [
    "ApifyCatalogSource",
    "ApifyRun",
    "CollectOptions",
    "FileCatalogSource",
    "FileRun",
    "InditexItemMapper",
    "UnreadableItem",
    "mapper_for",
]
