"""Every unique MongoDB index holds its collection's shard key (docs/deploy.md): MongoDB
enforces a unique index per shard only, so one without the key would stop being unique."""

from __future__ import annotations

from employeevirtual.stores.mongo.collections import INDEXES, SHARD_KEYS, Collections


def test_every_unique_index_includes_the_shard_key() -> None:
    checked = 0
    for collection, key in SHARD_KEYS.items():
        for index in INDEXES.get(collection, []):
            spec = index.document
            if spec.get("unique"):
                assert key in spec["key"], (collection, spec)
                checked += 1
    assert checked >= 1  # the (conversation_id, seq) index of chat_messages


def test_the_chat_collections_have_a_shard_key() -> None:
    assert set(SHARD_KEYS) == {Collections.CHAT_CONVERSATIONS, Collections.CHAT_MESSAGES}
    unsharded_unique = [
        (name, index.document)
        for name, indexes in INDEXES.items()
        if name not in SHARD_KEYS
        for index in indexes
        if index.document.get("unique")
    ]
    assert unsharded_unique == []  # a new unique index elsewhere needs a shard key decision
