"""`ollacord migrate-data --from URL --to URL`: an installation moved to another database.

The copy itself is ``bot.storage.transfer``; this prints what it did, a line a table on
stdout (progress on a terminal's stderr), with every password hidden.
"""

from __future__ import annotations

import argparse

from bot.cli.output import Console, StatusLine
from bot.core.config import Settings
from bot.storage.transfer import transfer


async def migrate_data(args: argparse.Namespace, settings: Settings, console: Console) -> int:
    status = StatusLine(console.stderr)

    def progress(table: str, rows: int) -> None:
        status.show(f"copying {table}: {rows:,} rows")

    try:
        result = await transfer(args.source, args.target, progress=progress)
    finally:
        status.clear()
    console.out(f"Copied {result.source} to {result.target}:")
    width = max(len(count.table) for count in result.tables)
    for count in result.tables:
        verdict = "" if count.matches else f"  MISMATCH: the source has {count.source:,}"
        console.out(f"  {count.table:<{width}}  {count.target:>9,} rows{verdict}")
    if not result.verified:
        console.note("the counts differ (see above): the target is not a faithful copy")
        return 1
    console.out(f"{result.rows:,} rows in {len(result.tables)} tables, every count verified.")
    return 0
