"""Running models outside a conversation: batches of prompts, benchmarks, comparisons.

Discord-free on purpose: the CLI (`ollacord batch|bench|compare`) uses it now, and the
Discord commands (/model compare, /model bench) are meant to reuse it as it is. Import from
the modules (batch, bench, compare, records, reports): this package imports nothing, so
the CLI's parser can read ``limits`` without loading the rest.
"""
