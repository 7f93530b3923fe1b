"""Subscribers: signing up, confirming, unsubscribing, choices, their records, CSV in and out."""
