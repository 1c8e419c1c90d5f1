"""How an answer is shown, without Discord types: ``AnswerRun`` streams a query into a
``StreamingReply`` (paced edits, status lines, footer), split into pages without breaking code
blocks; summaries of long texts; waiting for answers in flight when the bot stops.

May import: ``bot.core``. Never ``discord`` or ``aiohttp``: a reply writes through a
``ReplySink``, which ``bot.discord_app.replies`` implements.
"""
