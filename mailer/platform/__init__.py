"""The floor every package stands on: settings, the database and its unit of work,
jobs, Redis, errors without HTTP, logging."""
