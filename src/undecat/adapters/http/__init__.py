"""The photo fetcher on urllib3: proxy, politeness, backoff, allowed hosts, size and time caps.

* :mod:`.fetcher` -- :class:`ProxyPhotoFetcher`, the :class:`~undecat.ports.PhotoFetcher`;
* :mod:`.politeness` -- the process-wide in-flight limit and the random pause between requests;
* :mod:`.backoff` -- the 429/503 schedule and ``Retry-After``;
* :mod:`.urls` -- which photo URLs may be fetched (scheme and host);
* :mod:`.classify` -- the one place that decides whose fault a failed request is;
* :mod:`.useragents` -- the browser user agents rotated between requests.
"""

from undecat.adapters.http.fetcher import FetchSettings, Photo, ProxyPhotoFetcher

__all__ = ["FetchSettings", "Photo", "ProxyPhotoFetcher"]
