"""airnode: turn one bare-metal Linux box into a self-contained, air-gapped LLM node."""

__version__ = "0.1.0"
