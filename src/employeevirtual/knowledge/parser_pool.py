"""Parsing and chunking in a child process, with a time and a memory limit: a PDF bomb, a zip
bomb or a parser stuck on a damaged file fails its own document with a readable reason, and
neither the server's event loop nor its GIL ever waits on it."""

from __future__ import annotations

import asyncio
import concurrent.futures
import logging
import multiprocessing
import os
from concurrent.futures.process import BrokenProcessPool
from dataclasses import dataclass

from employeevirtual.knowledge.chunking import Chunk, chunk_text
from employeevirtual.knowledge.parsing import DocumentRejected, Limits, parse

__all__ = ["ParsedChunks", "ParserPool"]

log = logging.getLogger(__name__)


@dataclass(frozen=True, slots=True)
class ParsedChunks:
    pages: int | None
    chars: int
    chunks: list[Chunk]


def _die_with_parent(parent: int) -> None:
    """Linux: the kernel kills this child when the process that started it dies, however it
    dies (a SIGKILLed worker must not leave a parser behind)."""
    try:
        import ctypes
        import signal

        libc = ctypes.CDLL(None, use_errno=True)
        libc.prctl(1, int(signal.SIGKILL))  # PR_SET_PDEATHSIG
    except (OSError, AttributeError):  # not Linux: the pool's own shutdown still ends it
        return
    if os.getppid() != parent:  # the parent died before the call took effect
        os._exit(1)


def _prepare(megabytes: int, parent: int) -> None:
    """In the child: die with the parent; load the parsers and the tokenizer, then cap how much
    more address space the child may take (what it holds after start-up plus ``megabytes``): a
    decompression bomb hits the cap and fails its document, whatever the imports cost."""
    _die_with_parent(parent)
    import docx  # noqa: F401
    import html2text  # noqa: F401
    import pypdf  # noqa: F401

    chunk_text("# warm up\n\ntext", max_tokens=64, overlap=0)
    try:
        import resource

        with open("/proc/self/statm") as f:
            size = int(f.read().split()[0]) * resource.getpagesize()
        limit = size + megabytes * 1024 * 1024
        resource.setrlimit(resource.RLIMIT_AS, (limit, limit))
    except (ImportError, ValueError, OSError):  # not on this platform: the timeout still holds
        pass


def _work(kind: str, data: bytes, limits: Limits, max_tokens: int, overlap: int) -> ParsedChunks:
    try:
        parsed = parse(kind, data, limits)
        chunks = chunk_text(parsed.text, max_tokens=max_tokens, overlap=overlap)
    except MemoryError:
        raise DocumentRejected(
            "reading the document needed more memory than allowed "
            "(EV_KNOWLEDGE_PARSE_MEMORY_MB): a decompression bomb or an oversized file"
        ) from None
    return ParsedChunks(parsed.pages, len(parsed.text), chunks)


def _noop() -> None:
    return None


class ParserPool:
    def __init__(
        self,
        *,
        limits: Limits,
        max_tokens: int,
        overlap: int,
        timeout_seconds: float,
        memory_mb: int,
    ) -> None:
        self.limits = limits
        self.max_tokens = max_tokens
        self.overlap = overlap
        self.timeout_seconds = timeout_seconds
        self.memory_mb = memory_mb
        self._pool: concurrent.futures.ProcessPoolExecutor | None = None

    def _executor(self) -> concurrent.futures.ProcessPoolExecutor:
        if self._pool is None:
            os.environ.setdefault("MALLOC_ARENA_MAX", "2")
            os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
            self._pool = concurrent.futures.ProcessPoolExecutor(
                max_workers=1,
                mp_context=multiprocessing.get_context("spawn"),
                initializer=_prepare,
                initargs=(self.memory_mb, os.getpid()),
            )
        return self._pool

    def _discard(self) -> None:
        pool, self._pool = self._pool, None
        if pool is None:
            return
        for process in list(getattr(pool, "_processes", {}).values()):
            process.kill()
        pool.shutdown(wait=False, cancel_futures=True)

    def warm_up(self) -> None:
        """Start the child now (imports and tokenizer), not at the first document."""
        self._executor().submit(_noop)

    async def parse(self, kind: str, data: bytes) -> ParsedChunks:
        """DocumentRejected with the reason when the file cannot be indexed."""
        future = self._executor().submit(
            _work, kind, data, self.limits, self.max_tokens, self.overlap
        )
        try:
            return await asyncio.wait_for(asyncio.wrap_future(future), self.timeout_seconds)
        except TimeoutError:
            self._discard()
            raise DocumentRejected(
                f"reading the document took longer than {self.timeout_seconds:g} s "
                "(EV_KNOWLEDGE_PARSE_TIMEOUT_SECONDS): a damaged or hostile file"
            ) from None
        except BrokenProcessPool:
            self._discard()
            raise DocumentRejected(
                "the parser died reading this document (out of memory or crashed): "
                "a decompression bomb or a damaged file"
            ) from None

    def close(self) -> None:
        self._discard()
