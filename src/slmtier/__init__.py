"""slmtier: can a fine-tuned small language model replace the LLM on this task, and what does it save?"""

__version__ = "0.1.0"
