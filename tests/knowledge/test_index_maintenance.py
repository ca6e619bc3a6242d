"""The knowledge index's compaction runs beside this process's writes, never under them: a
``purge_deleted`` (an erasure's) removed data files a concurrent delete or merge was still
reading, and the delete failed ("Not found"), a 500 on ``DELETE /api/knowledge-bases/{id}``
(seen once in CI)."""

from __future__ import annotations

import asyncio
import uuid
from pathlib import Path

from employeevirtual.knowledge.engine import ChunkRow
from employeevirtual.knowledge.lance import LanceEngine


def _rows(base_id: uuid.UUID, n: int) -> list[ChunkRow]:
    document_id, owner_id = uuid.uuid4(), uuid.uuid4()
    return [
        ChunkRow(
            chunk_id=f"{document_id}:{i}",
            document_id=document_id,
            base_id=base_id,
            owner_id=owner_id,
            position=i,
            title="t",
            heading="",
            text=f"passage {i}",
            vector=[float(i % 7), 1.0, 0.5, 0.25],
        )
        for i in range(n)
    ]


async def test_compaction_beside_deletes_and_merges_fails_none(tmp_path: Path) -> None:
    index = LanceEngine(str(tmp_path / "index"), embedding_model="m", dimensions=4)
    await index.open()
    try:
        bases = [uuid.uuid4() for _ in range(24)]
        for base in bases:
            await index.upsert(_rows(base, 20))
        work = []
        for i, base in enumerate(bases):
            work.append(index.delete_base(base))
            work.append(index.upsert(_rows(uuid.uuid4(), 5)))
            if i % 3 == 0:
                work.append(index.purge_deleted())
            if i % 4 == 0:
                work.append(index.optimize())
        results = await asyncio.gather(*work, return_exceptions=True)
        assert [r for r in results if isinstance(r, BaseException)] == []
        assert await index.count() == 24 * 5
    finally:
        await index.close()
