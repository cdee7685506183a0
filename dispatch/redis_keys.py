"""Redis key prefixes with a hash tag: the keys a store's scripts and transactions touch together share one slot."""
from __future__ import annotations


def slot_group(prefix: str, group: str) -> str:
    """The key prefix of a store whose keys go together (`{<prefix><group>}:`): one Redis Cluster hash slot."""
    # One slot per store suffices: these keys grow with warnings, tasks and messages, not with residents (the per-person
    # keys, cooldown:{person} and erased:{subject}, stay untagged and spread over the shards).
    if "{" in prefix + group or "}" in prefix + group:  # a brace would end the tag early: keys would scatter
        raise ValueError(f"a Redis key prefix may hold no braces: {prefix + group!r}")
    return "{" + prefix + group + "}:"
