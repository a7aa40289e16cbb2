"""Engines run a function over chunks of work. ``local`` is threads on this machine."""
