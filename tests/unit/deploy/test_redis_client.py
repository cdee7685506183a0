"""Which client a Redis URL gets: one Redis, or Redis Cluster for `redis+cluster://` (scheme and database rewritten)."""
from __future__ import annotations

import asyncio

import pytest
import redis
import redis.asyncio as aioredis

from deploy.redis_client import cluster_url, connect, connect_sync, is_cluster


def test_only_the_cluster_schemes_name_a_cluster() -> None:
    assert is_cluster("redis+cluster://127.0.0.1:7000") and is_cluster("rediss+cluster://redis.example:6380")
    assert is_cluster("REDIS+CLUSTER://127.0.0.1:7000")  # a scheme is case-insensitive
    for plain in ("redis://127.0.0.1:6379/0", "rediss://redis.example:6380/0", "unix:///tmp/redis.sock", ""):
        assert not is_cluster(plain)


def test_a_cluster_url_gets_the_plain_scheme_and_loses_its_database_zero() -> None:
    assert cluster_url("redis+cluster://127.0.0.1:7000/0") == "redis://127.0.0.1:7000"
    assert cluster_url("redis+cluster://127.0.0.1:7000/") == "redis://127.0.0.1:7000"
    assert cluster_url("redis+cluster://127.0.0.1:7000") == "redis://127.0.0.1:7000"
    assert cluster_url("rediss+cluster://r.example:6380/0?ssl_cert_reqs=required") == \
        "rediss://r.example:6380?ssl_cert_reqs=required"
    with pytest.raises(ValueError, match="only database 0"):
        cluster_url("redis+cluster://127.0.0.1:7000/3")
    with pytest.raises(ValueError, match="not a Redis Cluster URL"):
        cluster_url("redis://127.0.0.1:6379/0")


def test_the_asyncio_client_is_the_cluster_one_for_a_cluster_url_with_the_options_handed_on() -> None:
    async def clients() -> tuple[object, object]:
        cluster = connect("redis+cluster://127.0.0.1:7000/0", username="svc", password="pw")  # connects when used
        single = connect("redis://127.0.0.1:6379/0", username="svc", password="pw")
        try:
            node = cluster.get_default_node() or cluster.startup_nodes[0]  # type: ignore[union-attr]
            assert (node.host, node.port) == ("127.0.0.1", 7000)
            assert (node.connection_kwargs["username"], node.connection_kwargs["password"]) == ("svc", "pw")
            assert single.connection_pool.connection_kwargs["username"] == "svc"  # type: ignore[union-attr]
            return cluster, single
        finally:
            await cluster.aclose()
            await single.aclose()

    cluster, single = asyncio.run(clients())
    assert isinstance(cluster, aioredis.RedisCluster) and isinstance(single, aioredis.Redis)


def test_the_synchronous_client_of_a_plain_url_is_one_redis() -> None:
    client = connect_sync("redis://127.0.0.1:6379/2", socket_timeout=1)  # connects when used
    try:
        assert isinstance(client, redis.Redis)
        assert client.connection_pool.connection_kwargs["db"] == 2
    finally:
        client.close()
