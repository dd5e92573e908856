"""Posting one JSON document to the webhook: signed, with a timeout, retried through
:mod:`crmbridge.retry` (the same policy every crmbridge connector uses).

Only transient failures are retried: 429 (honouring ``Retry-After``), 5xx, timeouts and dropped
connections. Any other answer (a 4xx, a redirect) fails at once: the same post would fail again.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import logging
import urllib.error
import urllib.request
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

from crmbridge import CrmBridgeError, RateLimited, TransientError, WriteRejected
from crmbridge.retry import RetryPolicy, call_with_retry
from crmbridge_webhook.settings import WebhookSettings

log = logging.getLogger("crmbridge.plugins.webhook")
USER_AGENT = "crmbridge-webhook/0.1.0"
SIGNATURE_HEADER = "X-Crmbridge-Signature"


def signature(secret: str, body: bytes) -> str:
    """The signature header's value: ``sha256=`` and the HMAC-SHA256 of ``body``, in hex.

    A receiver recomputes it over the raw body it got and compares with
    :func:`hmac.compare_digest`.
    """
    return "sha256=" + hmac.new(secret.encode(), body, hashlib.sha256).hexdigest()


@dataclass(frozen=True)
class Delivery:
    """One post: the event name, a stable id (the same event posted again has the same id, so a
    receiver can drop a duplicate), and the JSON document."""

    event: str
    delivery_id: str
    document: Mapping[str, Any]

    def body(self) -> bytes:
        return json.dumps(self.document, sort_keys=True, default=str).encode()


class _NoRedirects(urllib.request.HTTPRedirectHandler):
    """A redirect would turn the POST into a GET and lose the body: fail instead."""

    def redirect_request(self, *args: Any, **kwargs: Any) -> None:
        return None


class WebhookClient:
    """Posts deliveries to the configured URL."""

    def __init__(
        self,
        settings: WebhookSettings,
        *,
        sleep: Callable[[float], None] | None = None,
    ) -> None:
        if settings.url is None:
            raise ValueError("WebhookClient needs settings with a url")
        self.settings = settings
        self.url = settings.url
        self.sleep = sleep
        self._opener = urllib.request.build_opener(_NoRedirects)

    def post(self, delivery: Delivery, *, attempts: int | None = None) -> int:
        """Post ``delivery``; the HTTP status. Raises a :class:`CrmBridgeError` when it gave up."""
        body = delivery.body()
        headers = {
            "Content-Type": "application/json",
            "User-Agent": USER_AGENT,
            "X-Crmbridge-Event": delivery.event,
            "X-Crmbridge-Delivery": delivery.delivery_id,
        }
        if self.settings.secret is not None:
            headers[SIGNATURE_HEADER] = signature(self.settings.secret.get_secret_value(), body)
        policy = RetryPolicy(
            attempts=attempts or self.settings.attempts,
            max_seconds=(self.settings.timeout_seconds + 30) * self.settings.attempts,
            base=self.settings.backoff_seconds,
            cap=max(self.settings.backoff_seconds, 10.0),
            max_retry_after=30.0,
        )
        return call_with_retry(
            policy,
            lambda: self._post_once(body, headers),
            describe=f"webhook POST {delivery.event} to {self.settings.url_for_logs}",
            logger=log,
            sleep=self.sleep,
        )

    def _post_once(self, body: bytes, headers: Mapping[str, str]) -> int:
        request = urllib.request.Request(self.url, data=body, headers=dict(headers), method="POST")
        where = self.settings.url_for_logs
        try:
            with self._opener.open(request, timeout=self.settings.timeout_seconds) as response:
                status = int(response.status)
                response.read()
        except urllib.error.HTTPError as exc:
            retry_after = exc.headers.get("Retry-After")
            exc.close()  # the error holds the open response; the connection is not reused
            raise _from_status(exc.code, retry_after, where) from None
        except TimeoutError as exc:
            raise TransientError(
                f"webhook {where} did not answer within {self.settings.timeout_seconds:g} s",
                plugin="webhook",
                hint="raise CRMBRIDGE_WEBHOOK__TIMEOUT_SECONDS or check the receiver",
            ) from exc
        except (urllib.error.URLError, ConnectionError) as exc:
            reason = getattr(exc, "reason", exc)
            raise TransientError(
                f"webhook {where} cannot be reached: {reason}", plugin="webhook"
            ) from exc
        return status


def _from_status(status: int, retry_after: str | None, where: str) -> CrmBridgeError:
    """The error for an HTTP answer that is not a success, grouped by what to do next."""
    if status == 429:
        wait = _seconds(retry_after)
        return RateLimited(
            f"webhook {where} answered 429 Too Many Requests", retry_after=wait, plugin="webhook"
        )
    if status >= 500:
        return TransientError(f"webhook {where} answered {status}", plugin="webhook")
    if 300 <= status < 400:
        return WriteRejected(
            f"webhook {where} answered {status} (a redirect); crmbridge does not follow redirects "
            "for a POST",
            code=str(status),
            plugin="webhook",
            hint="set CRMBRIDGE_WEBHOOK__URL to the final address",
        )
    return WriteRejected(
        f"webhook {where} refused the post with {status}",
        code=str(status),
        plugin="webhook",
        hint="check CRMBRIDGE_WEBHOOK__URL and, if the receiver checks signatures, "
        "CRMBRIDGE_WEBHOOK__SECRET",
    )


def _seconds(value: str | None) -> float | None:
    if value is None:
        return None
    try:
        return max(0.0, float(value))
    except ValueError:
        return None
