"""What JSON Schema keywords hold, for code that walks schemas: the grammar builder (`agentlab.models.grammar`)
and the tool schema cleaner (`agentlab.tools.schema`) must agree on where sub-schemas are."""

DATA_KEYS = frozenset({"enum", "const", "default", "examples"})
"""Keywords whose values are data, not sub-schemas: a walk that rewrites schemas never enters them."""
