"""Retry policy: which failures are retried, and how long to wait between attempts."""

from __future__ import annotations

import random

import attrs

from rivet_core.errors import TransientError


@attrs.frozen(kw_only=True)
class RetryPolicy:
    max_retries: int
    backoff_ms: int
    retry_timeouts: bool = False
    """Whether a statement timeout counts as transient (a slow query may just be slow)."""

    def should_retry(self, exc: BaseException, attempt: int) -> bool:
        """``attempt`` is the number of retries already made."""
        if attempt >= self.max_retries or not isinstance(exc, TransientError):
            return False
        return self.retry_timeouts or getattr(exc, "reason", None) != "timeout"

    def delay(self, attempt: int) -> float:
        """Seconds before retry number ``attempt`` (1-based): exponential, with jitter so
        parallel workers that failed together do not retry together."""
        base = self.backoff_ms / 1000 * 2 ** (attempt - 1)
        return base * random.uniform(0.5, 1.0)
