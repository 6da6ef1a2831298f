"""I/O shell: Faust app, agents, HTTP delivery, sandbox, broker launcher, CLI."""
