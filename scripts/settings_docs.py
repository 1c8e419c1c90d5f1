"""Print or write the settings documentation generated from bot/core/config.py.

python scripts/settings_docs.py --env-example   # print .env.example
python scripts/settings_docs.py --markdown      # print the README's settings table
python scripts/settings_docs.py --write         # rewrite .env.example and the README table
python scripts/settings_docs.py --check         # exit 1 if either is out of date
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from bot.core.settings_docs import env_example, settings_table  # noqa: E402

ENV_EXAMPLE = ROOT / ".env.example"
README = ROOT / "README.md"
START, END = "<!-- settings:start -->", "<!-- settings:end -->"


def readme_with_table(readme: str, table: str) -> str:
    """The README with the text between the settings markers replaced by ``table``."""
    before, start, rest = readme.partition(START)
    _, end, after = rest.partition(END)
    if not start or not end:
        raise SystemExit(f"README.md lacks the {START} ... {END} markers")
    return f"{before}{START}\n{table}{END}{after}"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    group = parser.add_mutually_exclusive_group(required=True)
    group.add_argument("--env-example", action="store_true", help="print .env.example")
    group.add_argument("--markdown", action="store_true", help="print the settings table")
    group.add_argument("--write", action="store_true", help="update .env.example and README.md")
    group.add_argument("--check", action="store_true", help="fail if either is out of date")
    args = parser.parse_args(argv)
    if args.env_example:
        sys.stdout.write(env_example())
        return 0
    if args.markdown:
        sys.stdout.write(settings_table())
        return 0
    wanted = {
        ENV_EXAMPLE: env_example(),
        README: readme_with_table(README.read_text(), settings_table()),
    }
    stale = [path for path, text in wanted.items() if path.read_text() != text]
    if args.check:
        for path in stale:
            print(f"{path.name} is out of date: run python scripts/settings_docs.py --write")
        return 1 if stale else 0
    for path in stale:
        path.write_text(wanted[path])
        print(f"wrote {path.name}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
