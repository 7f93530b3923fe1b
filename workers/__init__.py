"""Celery workers: thin tasks that call mailer's domain functions."""
