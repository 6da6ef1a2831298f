"""The agents, one unit each: route (input -> jobs), deliver and retry (jobs -> HTTP -> outcomes).

Each module's docstring says what its agent reads, writes and when it acks; `pipeline.py`
holds what they share (topics, the writer, dedup, the delivery path, `or_exit`).
"""

from .deliver import DeliverAgent
from .pipeline import Pipeline, Topics
from .retry import RetryAgent
from .route import RouteAgent

__all__ = ["DeliverAgent", "Pipeline", "RetryAgent", "RouteAgent", "Topics"]
