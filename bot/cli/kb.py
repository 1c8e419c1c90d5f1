"""`ollacord kb add|list|remove|search|reembed`: a server's knowledge base from a terminal,
through the same KnowledgeBase as the bot's /kb commands.

Results go to stdout, one line a document; progress to stderr, redrawn on a terminal only
(a log or a pipe gets the outcomes, and a failure stays one line on stderr).
"""

from __future__ import annotations

import argparse
import asyncio
import functools
import logging
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

from bot.cli.context import UsageError, error_message, open_manager
from bot.cli.database import require_database
from bot.cli.output import Console, StatusLine, local_time, one_line, table
from bot.core.config import Settings
from bot.core.documents import MAX_DOCUMENT_BYTES, Document, read_document
from bot.core.errors import AttachmentError, InvalidRequestError, OllacordError
from bot.core.knowledge.base import MAX_DOCUMENT_CHARS, KnowledgeBase
from bot.core.knowledge.records import REPLACED, UNCHANGED, AddedDocument
from bot.core.knowledge.sources import label_of

log = logging.getLogger(__name__)

EXCERPT_CHARS = 300  # of a passage, under its line in `kb search`


def scope(guild_id: int) -> str:
    """The bot's key of a server's knowledge base (bot.discord_app.routing.guild_key)."""
    return f"guild:{guild_id}"


@dataclass(frozen=True, slots=True)
class Source:
    path: Path
    name: str
    in_folder: bool  # found in a folder: a file that is no document is skipped, not an error


def sources(paths: list[Path], name: str | None) -> Iterator[Source]:
    """The files to add, in order: each file named, then each folder's files sorted."""
    for path in paths:
        if path.is_dir():
            for file in sorted(path.rglob("*")):
                relative = file.relative_to(path)
                if file.is_file() and not any(p.startswith(".") for p in relative.parts):
                    yield Source(file, relative.as_posix(), True)
        else:
            yield Source(path, name or path.name, False)


def read(source: Source) -> Document:
    """The file's text, as the bot reads an attachment (in a worker thread)."""
    size = source.path.stat().st_size
    if size > MAX_DOCUMENT_BYTES:
        raise AttachmentError(
            source.name,
            AttachmentError.TOO_LARGE,
            f"`{source.name}` is {size / 1024 / 1024:.1f} MB; files can be at most "
            f"{MAX_DOCUMENT_BYTES // 1024 // 1024} MB.",
        )
    try:
        return read_document(source.name, source.path.read_bytes(), max_chars=MAX_DOCUMENT_CHARS)
    except AttachmentError as exc:
        if exc.reason != AttachmentError.TOO_LONG:
            raise
        # Its own wording speaks of a question's window.
        raise InvalidRequestError(
            f"`{source.name}` is too long for the knowledge base: a document can have at "
            f"most {MAX_DOCUMENT_CHARS:,} characters of text. Split it into smaller files."
        ) from exc
    except OSError as exc:
        raise AttachmentError(
            source.name, AttachmentError.UNREADABLE, f"cannot read {source.path}: {exc.strerror}"
        ) from exc


def outcome(added: AddedDocument) -> str:
    if added.status == UNCHANGED:
        return f"unchanged {added.name}: the same content is already stored, nothing embedded"
    verb = "replaced" if added.status == REPLACED else "added"
    pages = f", {added.pages} pages" if added.pages else ""
    reused = added.chunks - added.embedded
    reuse = f" ({reused:,} already embedded)" if reused else ""
    return (
        f"{verb} {added.name}: {plural(added.chunks, 'passage')}{reuse}, "
        f"{added.characters:,} characters{pages}"
    )


def _why(exc: OllacordError, settings: Settings) -> str:
    if isinstance(exc, AttachmentError) and exc.reason == AttachmentError.TOO_LONG:
        return exc.user_message  # too many passages: the CLI's advice is about windows
    return error_message(exc, settings)


def plural(number: int, thing: str) -> str:
    """ "1 passage", "1,200 passages"."""
    return f"{number:,} {thing}" + ("" if number == 1 else "s")


def progress_line(status: StatusLine, doing: str) -> functools.partial[None]:
    return functools.partial(_show_progress, status, doing)


def _show_progress(status: StatusLine, doing: str, done: int, total: int) -> None:
    status.show(f"{doing}: {done:,}/{total:,} passages embedded")


async def add_documents(args: argparse.Namespace, settings: Settings, console: Console) -> int:
    if args.name is not None and (len(args.paths) > 1 or args.paths[0].is_dir()):
        raise UsageError("--name names a single file, not several or a folder")
    todo = list(sources(args.paths, args.name))
    if not todo:
        raise UsageError("the folders hold no files")
    status = StatusLine(console.stderr)
    failed = skipped = 0
    async with open_manager(settings, persistent=True) as manager:
        for source in todo:
            try:
                added = await _add_one(manager.knowledge, args, source, status)
            except InvalidRequestError as exc:  # this file's; Ollama's or the database's stop all
                if source.in_folder and getattr(exc, "reason", None) == AttachmentError.UNSUPPORTED:
                    skipped += 1
                    console.out(f"skipped {source.name}: {one_line(exc.user_message)}")
                else:
                    failed += 1
                    console.note(f"{source.path}: {_why(exc, settings)}")
                continue
            console.out(outcome(added))
    if len(todo) > 1:
        console.out(
            f"{len(todo) - failed - skipped} of {len(todo)} files added or up to date"
            + (f", {skipped} skipped" if skipped else "")
            + (f", {failed} failed" if failed else "")
        )
    return 1 if failed else 0


async def _add_one(
    knowledge: KnowledgeBase, args: argparse.Namespace, source: Source, status: StatusLine
) -> AddedDocument:
    try:
        document = await asyncio.to_thread(read, source)
        return await knowledge.add(
            scope(args.guild),
            source.name,
            document,
            channel_ids=args.channels,
            progress=progress_line(status, f"adding {source.name}"),
        )
    finally:
        status.clear()


async def list_documents(args: argparse.Namespace, settings: Settings, console: Console) -> int:
    require_database(settings)
    async with open_manager(settings, persistent=True) as manager:
        knowledge = manager.knowledge
        documents = await knowledge.list(scope(args.guild))
    if not documents:
        console.note(f"server {args.guild} has no knowledge-base documents")
        return 0
    rows = [
        [
            d.name,
            f"{d.chunks:,}",
            str(d.pages or "-"),
            "all" if d.channel_ids is None else ",".join(map(str, d.channel_ids)),
            f"{d.stale:,}" if d.stale else "-",
            local_time(d.created_at),
        ]
        for d in documents
    ]
    console.out(table(["NAME", "PASSAGES", "PAGES", "CHANNELS", "STALE", "ADDED"], rows))
    stale = sum(d.stale for d in documents)
    if stale:
        console.note(
            f"{plural(stale, 'passage')} embedded with another model than {knowledge.model} "
            "(EMBEDDING_MODEL changed); searches skip them until `ollacord kb reembed`"
        )
    return 0


async def remove_document(args: argparse.Namespace, settings: Settings, console: Console) -> int:
    require_database(settings)
    async with open_manager(settings, persistent=True) as manager:
        chunks = await manager.knowledge.remove(scope(args.guild), args.name)
    console.out(f"removed {' '.join(args.name.split())} ({plural(chunks, 'passage')})")
    return 0


async def search_documents(args: argparse.Namespace, settings: Settings, console: Console) -> int:
    require_database(settings)
    async with open_manager(settings, persistent=True) as manager:
        knowledge: KnowledgeBase = manager.knowledge
        passages = await knowledge.search(
            scope(args.guild),
            args.query,
            channel_id=args.channel,
            k=args.count,
            min_score=args.min_score,
        )
        floor = knowledge.min_score if args.min_score is None else args.min_score
    if not passages:
        console.note(f"no passage scores {floor:.2f} or more for that question")
        return 0
    for number, passage in enumerate(passages, 1):
        under = f" > {passage.heading}" if passage.heading else ""
        label = label_of(passage.document, passage.page)
        excerpt = one_line(passage.text)
        if len(excerpt) > EXCERPT_CHARS:
            excerpt = excerpt[: EXCERPT_CHARS - 3].rstrip() + "..."
        console.out(f"[{number}] {passage.score:.2f}  {label}{under}\n    {excerpt}")
    return 0


async def reembed_documents(args: argparse.Namespace, settings: Settings, console: Console) -> int:
    require_database(settings)
    status = StatusLine(console.stderr)
    async with open_manager(settings, persistent=True) as manager:
        knowledge = manager.knowledge
        where = None if args.guild is None else scope(args.guild)
        try:
            done = await knowledge.reembed(where, progress_line(status, "re-embedding"))
        finally:
            status.clear()
    if done:
        console.out(f"re-embedded {plural(done, 'passage')} with {knowledge.model}")
    else:
        console.out(f"nothing to re-embed: every passage is embedded with {knowledge.model}")
    return 0
