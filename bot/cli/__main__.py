"""`python -m bot.cli`: the `ollacord` console script without the installed entry point."""

import sys

from bot.cli import main

sys.exit(main())
