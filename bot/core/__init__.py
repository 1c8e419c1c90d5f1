"""The core: everything about asking a model, with no Discord in it.

The request manager (seed 000's API) plans and runs queries: the fair queue, the context
window and the messages, generation against Ollama with retries and fallback, storing turns.
Also the model catalog, settings (``config``), typed values (``types``) and typed errors.

May import: the standard library, ``ollama``/``httpx`` (only in ``ollama_client``), and
``bot.storage``. Never ``discord`` or ``aiohttp``, nor any other layer of ``bot``.
"""
