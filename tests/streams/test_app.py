"""The app's wiring: topics and agents."""

from __future__ import annotations


def test_a_deliver_agent_queues_one_take_of_packs_not_the_app_default() -> None:
    """A jobs record holds up to 20 jobs: Faust's default queue (8,192 records) could hold
    160k jobs per instance in memory."""
    from pushstream.codecs.config import load_config
    from pushstream.streams.app import create_app
    from pushstream.streams.local.stack import local_config, local_env

    config = load_config(local_config("kafka://127.0.0.1:1", "http://127.0.0.1:1"), local_env())
    agents = create_app(config).agents
    for instance in config.instances:
        queue = agents[f"deliver-{instance.name}"].channel.clone(is_iterator=True).queue
        assert queue.maxsize == config.pipeline.deliver_batch
