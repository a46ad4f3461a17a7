"""rlscale: measure, fit, forecast and plan the scaling of RL post-training of LLMs."""

__version__ = "0.1.0"
