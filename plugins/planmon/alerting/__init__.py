"""Alerting: messages about regressions, routing to channels, dedup/cooldown and delivery records.

No Airflow here (``planmon.airflow.alert_tasks`` wires it into ``planmon_alert``); the repository is
reached through ``planmon.store.alerts`` only.
"""

from __future__ import annotations

from planmon.alerting.channels import (
    Channel,
    DeliveryError,
    LogFileChannel,
    SlackWebhookChannel,
    SmtpChannel,
    WebhookChannel,
)
from planmon.alerting.dispatch import Dispatcher, DispatchResult
from planmon.alerting.messages import AlertMessage, RunLinks, TargetInfo, build_regression_message
from planmon.alerting.routing import RoutingConfig, build_channels, load_routing
from planmon.alerting.settings import AlertSettings, load_alert_settings

__all__ = [
    "AlertMessage",
    "AlertSettings",
    "Channel",
    "DeliveryError",
    "DispatchResult",
    "Dispatcher",
    "LogFileChannel",
    "RoutingConfig",
    "RunLinks",
    "SlackWebhookChannel",
    "SmtpChannel",
    "TargetInfo",
    "WebhookChannel",
    "build_channels",
    "build_regression_message",
    "load_alert_settings",
    "load_routing",
]
