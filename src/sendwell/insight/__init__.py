"""Insight: rates per campaign and audience dimension, reasons, spike alerts, circuit breaker, recommendations."""
