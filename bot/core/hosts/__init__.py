"""Several Ollama hosts behind the one Ollama boundary of the core.

``spec`` parses ``OLLAMA_HOSTS`` (light: the settings import it); ``breaker`` takes a host
that stops answering out of rotation and lets it back; ``host`` is one server (its client,
its slots, the models it has and has loaded, its figures); ``routing`` says which hosts may
answer a question and which of them is best; ``pool`` puts them together: leases of a slot
for a question, moving it to another host when one fails before its first token.

Kept free of re-exports so that ``bot.core.config`` can import ``spec`` without the client.
Part of the core: it may import the Ollama client, the queue, errors and types; never
``discord`` or ``aiohttp``.
"""
