"""The arguments of `ollacord kb`: a server's knowledge base from a terminal.

Nothing heavy is imported here: the parser is built for every --help.
"""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import Any

from bot.cli.options import positive_int

KB_DESCRIPTION = """\
The knowledge bases the bot answers from, one per Discord server (--guild: the server's
id; in Discord, right-click the server with Developer Mode on, "Copy Server ID"). What the
bot's /kb commands do, from a terminal: load a folder of documents at once.

Documents are read as text, Markdown, source code, CSV, JSON or PDF, split into passages
and embedded with EMBEDDING_MODEL; their text and vectors are stored in DATABASE_URL."""


def add_kb(commands: argparse._SubParsersAction[argparse.ArgumentParser], handler: Any) -> None:
    """``handler(module, name)``: the parser's lazy import of a command's function."""
    group = commands.add_parser(
        "kb",
        help="add, list, search and remove the documents a server's answers cite",
        description=KB_DESCRIPTION,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    actions = group.add_subparsers(
        dest="action", title="actions", metavar="ACTION", required=True, help="one of:"
    )
    add = actions.add_parser(
        "add",
        help="add files, or every document in folders (progress on stderr)",
        description="Add documents to a server's knowledge base. A folder adds every file in "
        "it and its subfolders (hidden ones left out), each named by its path in the folder; "
        "files that are not documents (images, archives) are skipped. A document of the same "
        "name is replaced; the same content again embeds nothing.",
    )
    add.add_argument("paths", nargs="+", metavar="PATH", type=_existing, help="a file or folder")
    _add_guild(add)
    add.add_argument("--name", help="the document's name (one file only; default: its file name)")
    add.add_argument(
        "--channel",
        dest="channels",
        metavar="ID",
        action="append",
        type=_discord_id,
        help="use the documents only in this channel (repeatable; default: every channel)",
    )
    add.set_defaults(handler=handler("kb", "add_documents"), subparser=add)
    listing = actions.add_parser("list", help="a server's documents, passages and channels")
    _add_guild(listing)
    listing.set_defaults(handler=handler("kb", "list_documents"))
    remove = actions.add_parser("remove", help="remove a document with its passages and vectors")
    remove.add_argument("name", help="the document's name (see `ollacord kb list`)")
    _add_guild(remove)
    remove.set_defaults(handler=handler("kb", "remove_document"))
    search = actions.add_parser(
        "search", help="the passages closest in meaning to a question, with their scores"
    )
    search.add_argument("query", help="what to look for")
    _add_guild(search)
    search.add_argument(
        "--channel",
        metavar="ID",
        type=_discord_id,
        help="only documents used in this channel (default: every document)",
    )
    search.add_argument(
        "-k", "--count", type=positive_int, help="how many passages (default: KNOWLEDGE_PASSAGES)"
    )
    search.add_argument(
        "--min-score",
        type=float,
        metavar="SCORE",
        help="the relevance floor, a cosine from -1 to 1 (default: KNOWLEDGE_MIN_SCORE)",
    )
    search.set_defaults(handler=handler("kb", "search_documents"))
    reembed = actions.add_parser(
        "reembed",
        help="re-embed passages after a change of EMBEDDING_MODEL (progress on stderr)",
        description="Re-embed, with the current EMBEDDING_MODEL, every passage another model "
        "embedded: answers and searches skip those until then.",
    )
    reembed.add_argument(
        "--guild", metavar="ID", type=_discord_id, help="only this server (default: all)"
    )
    reembed.set_defaults(handler=handler("kb", "reembed_documents"))


def _add_guild(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--guild", metavar="ID", type=_discord_id, required=True, help="the Discord server's id"
    )


def _existing(raw: str) -> Path:
    path = Path(raw)
    if not path.exists():
        raise argparse.ArgumentTypeError(f"no such file or folder: {raw}")
    return path


def _discord_id(raw: str) -> int:
    digits = raw.removeprefix("guild:").strip("<#>")
    if not digits.isdigit() or int(digits) < 1:
        raise argparse.ArgumentTypeError(f"expected a Discord id (digits), got {raw!r}")
    return int(digits)
