"""Faults injected at every boundary (Ollama, Discord, the process, the database) and load:
each test asserts what the user sees, that no turn is lost or stored twice, and that the
bot keeps serving afterwards. docs/reliability.md lists them."""
