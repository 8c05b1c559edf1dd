"""Zara's web endpoints: the store locator and in-store availability (urllib3)."""

from undecat.adapters.zara.client import ZaraClient, ZaraSettings

__all__ = ["ZaraClient", "ZaraSettings"]
