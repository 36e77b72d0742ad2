"""The embedded demo: synthetic dashcam-like feature caches, so a campaign runs with no data,
no GPU and no API key."""
