"""Redis clients for a URL: one Redis (`redis://`, `rediss://`) or a Redis Cluster (`redis+cluster://`, `rediss+cluster://`)."""
from __future__ import annotations

from typing import Any

import redis
import redis.asyncio as aioredis

CLUSTER_SCHEMES = {"redis+cluster": "redis", "rediss+cluster": "rediss"}


def is_cluster(url: str) -> bool:
    """True when the URL names a Redis Cluster (`redis+cluster://` or `rediss+cluster://`)."""
    return url.partition("://")[0].lower() in CLUSTER_SCHEMES


def cluster_url(url: str) -> str:
    """A cluster URL as redis-py's cluster client reads it: the plain scheme, and no database (a cluster has only 0)."""
    scheme, sep, rest = url.partition("://")
    if not sep or scheme.lower() not in CLUSTER_SCHEMES:
        raise ValueError(f"not a Redis Cluster URL: {scheme}://…")
    where, slash, tail = rest.partition("/")
    path, mark, query = tail.partition("?")
    if path not in ("", "0"):  # redis-py refuses any other database on a cluster: say so here, with the URL's words
        raise ValueError(f"a Redis Cluster has only database 0, not /{path}")
    return f"{CLUSTER_SCHEMES[scheme.lower()]}://{where}{'?' + query if mark else ''}"


class _SlotsFirst(aioredis.RedisCluster):
    """redis-py's asyncio cluster client, which learns the cluster's slots before it routes a command."""

    async def execute_command(self, *args: Any, **kwargs: Any) -> Any:
        # redis-py picks a command's node before it reads the slots (its asyncio cluster wants `initialize()` first:
        # redis-py#3032). Commands sent together on a fresh client then go to any node, come back MOVED, and the
        # refresh that follows can close a connection another of them is opening (AttributeError on its writer).
        await self.initialize()  # returns at once when the slots are known
        return await super().execute_command(*args, **kwargs)


def connect(url: str, **options: Any) -> aioredis.Redis | aioredis.RedisCluster:
    """The asyncio client for the URL (`options`: redis-py's keywords, e.g. `Settings.redis_options()`)."""
    if is_cluster(url):
        return _SlotsFirst.from_url(cluster_url(url), **options)
    return aioredis.Redis.from_url(url, **options)


def connect_sync(url: str, **options: Any) -> redis.Redis | redis.RedisCluster:
    """The synchronous client for the URL (`options` as for `connect`)."""
    if is_cluster(url):
        return redis.RedisCluster.from_url(cluster_url(url), **options)
    return redis.Redis.from_url(url, **options)
