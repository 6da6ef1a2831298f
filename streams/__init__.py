"""I/O shell: the Faust app and its agents, HTTP delivery, the intake, the CLI; `local/` the local stack."""
