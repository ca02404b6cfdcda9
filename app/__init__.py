"""Ollama Swarm Router: VRAM-aware model routing in front of Ollama."""
