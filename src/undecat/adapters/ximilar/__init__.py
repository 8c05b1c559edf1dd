"""The Ximilar adapters: the collection API client and the dry-run recorder."""

from undecat.adapters.ximilar.client import DEFAULT_BACKOFF, XimilarClient
from undecat.adapters.ximilar.dry_run import DRY_RUN_FILE, DryRunIndex
from undecat.adapters.ximilar.limiter import RateLimiter

__all__ = ["DEFAULT_BACKOFF", "DRY_RUN_FILE", "DryRunIndex", "RateLimiter", "XimilarClient"]
