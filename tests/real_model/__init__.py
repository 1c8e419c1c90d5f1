"""The real-model stage: real GGUF models behind Ollama's API (`pytest -m real_model`)."""
