"""Digests: making a run, composing its mail per set of sections, schedules, the archive."""
