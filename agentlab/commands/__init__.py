"""`agentlab` subcommands beyond `run` and `tools`; each module has `add_parser(subparsers)`."""
