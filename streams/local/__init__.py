"""The local stack: what the demo, the tests and the benchmarks run, never a production worker.

`broker` launches Tansu (the dev extra's Kafka-compatible broker), `sandbox` is a local server
speaking both destinations' APIs, `stack` starts broker, sandbox and workers as processes,
`samples` makes Segment events, `demo` runs it all end to end.
"""
