"""Operating the bot: the HTTP server (health, stats, Prometheus metrics, admin routes) and
logging with secrets scrubbed.

May import: ``aiohttp``, ``prometheus_client``, ``bot.core``. Never ``discord``: the HTTP
server learns Discord's state through a callback.
"""
