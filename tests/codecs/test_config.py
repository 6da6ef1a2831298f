"""Config mistakes: each kind gets a precise message with its location, all at once."""

from __future__ import annotations

from pathlib import Path

import pytest

from pushstream.codecs.config import ConfigError, load_config

PW = 'name = "pw"\ntype = "pushwoosh"\nsettings = { pushwooshAPIKey = "K", pushwooshAppCode = "A" }\n'


def _errors(text: str, env: dict[str, str] | None = None, base: Path | None = None) -> list[str]:
    with pytest.raises(ConfigError) as info:
        load_config(text, env or {}, base)
    return info.value.errors


@pytest.mark.parametrize(("text", "expected"), [
    ("[kafka]\nbrokr = 1", "kafka: Object contains unknown field `brokr`"),
    ("[pipeline]\nbatch_window = \"x\"", "pipeline.batch_window: Expected `float`, got `str`"),
    ("[pipeline]\ndeliver_batch = 0", "pipeline.deliver_batch: Expected `int` >= 1"),
    ("[pipeline]\nbatch_window = 0", "pipeline.batch_window: Expected `float` > 0.0"),
    ("[kafka]\ninput_topics = []", "kafka.input_topics: name at least one topic"),
    ("not = [toml", "not valid TOML"),
    ("[[destinations]]\nname = \"x\"\ntype = \"braze\"\nsettings = {}", "type: unknown destination 'braze'"),
    ("[[destinations]]\nname = \"x\"\ntype = \"pushwoosh\"\nsettings = { pushwooshAppCode = \"A\" }",
     "settings: Object missing required field `pushwooshAPIKey`"),
    ("[[destinations]]\nname = \"x\"\ntype = \"pushwoosh\"\nsettings = { pushwooshAPIKey = \"${NOPE}\", pushwooshAppCode = \"A\" }",
     "settings.pushwooshAPIKey: environment variable NOPE is not set"),
    ("[[destinations]]\nname = \"x\"\ntype = \"xtremepush\"\nsettings = { url = \"u\", apiKey = \"k\", region = \"eu\" }",
     "settings: Object contains unknown field `region`"),
    (f"[[destinations]]\n{PW}presets = {{ \"Nope\" = {{ enabled = false }} }}", "presets: unknown preset 'Nope'"),
    (f"[[destinations]]\n{PW}[[destinations]]\n{PW}", "two instances are called 'pw'"),
    (f"[[destinations]]\n{PW}[[destinations.mappings]]\nname = \"m\"\naction = \"fly\"\nsubscribe = 'type = \"track\"'\nmapping = {{}}",
     "mappings[0] (m).action: pushwoosh has no action 'fly'"),
    (f"[[destinations]]\n{PW}[[destinations.mappings]]\nname = \"m\"\naction = \"trackEvent\"\nsubscribe = 'type = \"track\"'",
     "give exactly one of `mapping` (inline) or `mapping_file`"),
    (f"[[destinations]]\n{PW}[[destinations.mappings]]\nname = \"m\"\naction = \"trackEvent\"\nsubscribe = 'type = \"track\"'\nmapping = {{}}\nbatch_size = 500",
     "batch_size: must be between 1 and 100, got 500"),
    (f"[[destinations]]\n{PW}[[destinations.mappings]]\nname = \"m\"\naction = \"updateUserProfile\"\nsubscribe = 'type = \"identify\"'\nmapping = {{}}\nenable_batching = true",
     "enable_batching: action updateUserProfile does not support batching"),
    (f"[[destinations]]\n{PW}[[destinations.mappings]]\nname = \"Track Events\"\naction = \"trackEvent\"\nsubscribe = 'type = \"track\"'\nmapping = {{}}",
     "is already called 'Track Events'"),
    (f"[[destinations]]\n{PW}[[destinations.mappings]]\nname = \"m\"\naction = \"trackEvent\"\nsubscribe = 'type = \"track\"'\nmapping_file = \"missing.json\"",
     "mapping_file: cannot read"),
])
def test_each_mistake_has_a_precise_message(text: str, expected: str) -> None:
    errors = _errors(text)
    assert any(expected in e for e in errors), errors


def test_more_than_50_custom_mappings_are_refused() -> None:
    mappings = "".join(f"[[destinations.mappings]]\nname = \"m{i}\"\naction = \"trackEvent\"\n"
                       f"subscribe = 'type = \"track\"'\nmapping = {{}}\n" for i in range(51))
    assert any("at most 50 custom mappings, got 51" in e for e in _errors(f"[[destinations]]\n{PW}{mappings}"))


def test_all_mistakes_are_reported_together() -> None:
    text = ("[kafka]\nx = 1\n[[destinations]]\nname = \"a\"\ntype = \"pushwoosh\"\nsettings = { pushwooshAPIKey = \"K\" }\n"
            "[[destinations.mappings]]\nname = \"m\"\naction = \"trackEvent\"\nsubscribe = 'type = \"t\" OR x'\n"
            "mapping = { name = { \"@path\" = 1 } }\n")  # `name`: an action field (an unknown one is a mistake too)
    errors = _errors(text)
    assert len(errors) == 4, errors


def test_secrets_do_not_print() -> None:
    text = "[[destinations]]\n" + PW.replace('"K"', '"${KEY}"')
    config = load_config(text, {"KEY": "s3cr3t"})
    assert "s3cr3t" not in repr(config) and "s3cr3t" not in str(config.instances[0].settings)
    assert config.instances[0].settings.api_key.reveal() == "s3cr3t"


def test_mapping_file_is_read_relative_to_the_config(tmp_path: Path) -> None:
    (tmp_path / "m.json").write_text('{"external_id": {"@path": "$.userId"}}')
    config = load_config(f"[[destinations]]\n{PW}presets = false\n[[destinations.mappings]]\nname = \"m\"\n"
                         "action = \"trackEvent\"\nsubscribe = 'type = \"track\"'\nmapping_file = \"m.json\"\n",
                         {}, tmp_path)
    (sub,) = config.instances[0].subscriptions
    assert sub.mapping({"userId": "u"})["external_id"] == "u"


def test_request_size_is_the_largest_batch_of_a_batched_mapping() -> None:
    # Presets: Pushwoosh batches track events (100 a request); a mapping's batch_size lowers it.
    assert load_config(f"[[destinations]]\n{PW}", {}).instances[0].request_size == 100
    smaller = load_config(f"[[destinations]]\n{PW}[destinations.presets.\"Track Events\"]\nbatch_size = 40\n", {})
    assert smaller.instances[0].request_size == 40
    unbatched = load_config(f"[[destinations]]\n{PW}[destinations.presets.\"Track Events\"]\nenable_batching = false\n",
                            {})
    assert unbatched.instances[0].request_size == 1  # each request carries one job


MAPPING = "[[destinations.mappings]]\nname = \"m\"\naction = \"trackEvent\"\nsubscribe = 'type = \"track\"'\n"


@pytest.mark.parametrize(("text", "expected"), [
    (f"[[destinations]]\n{PW}max_attempts = 0", "destinations[0] (pw).max_attempts: Expected `int` >= 1"),
    (f"[[destinations]]\n{PW}retry_window = -5", "destinations[0] (pw).retry_window: Expected `float` > 0.0"),
    (f"[[destinations]]\n{PW}max_requests_per_second = 0", "max_requests_per_second: Expected `float` > 0.0"),
    (f"[[destinations]]\n{PW}max_in_flight = 0", "max_in_flight: Expected `int` >= 1"),
    (f"[[destinations]]\n{PW}max_connections = 10", "max_connections: now max_in_flight, the most requests in flight"),
    ("[kafka]\nbroker = \"kafka://x:1\"", "destinations: name at least one destination instance"),
    (f"[[destinations]]\n{PW}{MAPPING}mapping = {{ nmae = \"x\" }}",
     "mappings[0] (m).mapping/nmae: trackEvent has no field 'nmae'; its fields: external_id,"),
    ("[ops]\nlisten = 1", "ops.listen: Expected `str`, got `int`"),
    ("[kafka]\nreplication_factor = 0", "kafka.replication_factor: Expected `int` >= 1"),
])
def test_out_of_range_values_missing_destinations_and_unknown_output_fields_are_refused(text: str,
                                                                                      expected: str) -> None:
    errors = _errors(text)
    assert any(expected in e for e in errors), errors


def test_several_mistakes_in_one_section_are_all_reported() -> None:
    errors = _errors(f"[pipeline]\nbatch_window = 0\ndeliver_batch = 0\nmax_attempts = \"x\"\nnope = 1\n"
                     f"[kafka]\npartitions = \"4\"\nbrokr = 1\n[[destinations]]\n{PW}")
    assert sorted(errors) == sorted([
        "pipeline: Object contains unknown field `nope`", "pipeline.batch_window: Expected `float` > 0.0",
        "pipeline.deliver_batch: Expected `int` >= 1", "pipeline.max_attempts: Expected `int`, got `str`",
        "kafka: Object contains unknown field `brokr`", "kafka.partitions: Expected `int`, got `str`"])


def test_a_missing_mapping_file_does_not_hide_its_trigger_mistakes(tmp_path: Path) -> None:
    errors = _errors(f"[[destinations]]\n{PW}[[destinations.mappings]]\nname = \"m\"\naction = \"trackEvent\"\n"
                     f"subscribe = 'type = \"track\" AND event = \"x\"'\nmapping_file = \"missing.json\"", base=tmp_path)
    assert any("mapping_file: cannot read" in e for e in errors), errors
    assert any(e.startswith("destinations[0] (pw).mappings[0] (m).subscribe: ") for e in errors), errors
