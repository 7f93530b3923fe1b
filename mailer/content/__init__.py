"""Content: articles in (API, feeds, the console), sanitizing, summaries, the editor's draft."""
