"""The private user media bucket as a library for the app backend: ``import undecat.user_media``.

::

    from undecat.user_media import MediaKind, UserMedia, UserMediaError

    media = UserMedia.from_env()   # S3_ENDPOINT, S3_*_KEY, S3_USER_MEDIA_BUCKET, PRODUCTION_DB_URL
    stored = media.store(user_id, MediaKind.PHOTO, photo_id, main=original, thumb=thumb)
    main_url, thumb_url = media.signed_urls(user_id, MediaKind.PHOTO, photo_id)
    media.erase_user(user_id)

The rules (ids, image checks, both-or-neither, the index, erasure) are in docs/user-media.md.
"""

from undecat.domain.keys import SAFE_ID_PATTERN, MediaKind
from undecat.domain.user_media import ErasureReport, KindUsage, StoredItem, Usage
from undecat.errors import UserMediaError
from undecat.user_media._facade import MediaChecker, MediaIndex, MediaObjects, UserMedia

__all__ = [
    "SAFE_ID_PATTERN",
    "ErasureReport",
    "KindUsage",
    "MediaChecker",
    "MediaIndex",
    "MediaKind",
    "MediaObjects",
    "StoredItem",
    "Usage",
    "UserMedia",
    "UserMediaError",
]
