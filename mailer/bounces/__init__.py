"""Bounces and complaints: reading them, the reader they are about, what they change."""
