"""Features of queries and documents: query frequency and buckets (click and text features follow)."""

from __future__ import annotations

from hybridrank.features._frequency import BucketConfig, FrequencyBuckets, query_frequency

__all__ = ["BucketConfig", "FrequencyBuckets", "query_frequency"]
