"""The agents, one unit each: route (input -> jobs), deliver and retry (jobs -> HTTP -> outcomes).

Each module's docstring says what its agent reads, writes and when it acks; `pipeline.py`
holds the path they share from jobs to written outcomes (topics, the writer, dedup), `base.py`
what every agent is and its exit policy (`or_exit`).
"""

from pushstream.streams.agents.deliver import DeliverAgent
from pushstream.streams.agents.pipeline import Pipeline, Topics
from pushstream.streams.agents.retry import RetryAgent
from pushstream.streams.agents.route import RouteAgent

__all__ = ["DeliverAgent", "Pipeline", "RetryAgent", "RouteAgent", "Topics"]
