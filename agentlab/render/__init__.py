"""Rendering of event streams for people (rich console). The loop never imports this."""
