"""Notifications for a campaign left running for weeks: the `notify:` section of configs/orze.yaml
(config), events derived from the research directory's files (detect), delivery to webhooks with
retries in the background (deliver), and the per-node notifier the daemon ticks (notifier).
See docs/dashboard.md."""
