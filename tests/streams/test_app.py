"""The app's wiring: topics, agents and the partitions fetched only while they answer records."""

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


def test_only_the_retry_topics_are_named_in_fetches_only_while_they_answer_records() -> None:
    """Jobs and input partitions are always fetched: a record there must not wait for a peek."""
    from pushstream.codecs.config import load_config
    from pushstream.streams.agents import Topics
    from pushstream.streams.app import create_app
    from pushstream.streams.local.stack import local_config, local_env

    config = load_config(local_config("kafka://127.0.0.1:1", "http://127.0.0.1:1"), local_env())
    topics = Topics.of(config)
    quiet = create_app(config).quiet_partitions
    assert quiet is not None and quiet.topics == set(topics.retry.values())
    assert not quiet.topics & {*topics.jobs.values(), *config.kafka.input_topics}
