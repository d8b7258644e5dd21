"""Grafana's HMAC signature: a webhook contact point's "HMAC Signature" option, whose header
names the integration gives (they are the contact point's own settings)."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime
from functools import lru_cache

from shared.providers.base import InboundRequest, SignatureInvalid
from shared.providers.schemes import BODY, HeaderValue, Hmac, Text, Window

# The docs and the UI's placeholder name this one…
DOCUMENTED_HEADER = "x-grafana-alerting-signature"
# …but with the Header field left empty, Grafana signs in this one (grafana/alerting
# http/hmac.go `defaultHeaderName`; its test "Empty header uses default").
EMPTY_FIELD_HEADER = "x-grafana-alert-signature"
# Grafana sets no window ("verify it's recent"): hookhub's choice, as Stripe's.
TOLERANCE_SECONDS = 300


@dataclass(frozen=True)
class GrafanaHmac:
    """Lower-case hex HMAC-SHA256, no prefix, keyed by the secret's text, of the body, or of
    `{timestamp}:{body}` when the contact point names a timestamp header (Unix seconds,
    within five minutes). Without `signature_header`, either header name is taken."""

    secret: str = "hmac_secret"  # noqa: S105 - the setting's name
    signature_header: str = "signature_header"
    timestamp_header: str = "timestamp_header"
    name: str = "hmac"

    @property
    def settings(self) -> tuple[str, ...]:
        return (self.secret, self.signature_header, self.timestamp_header)

    @property
    def headers(self) -> tuple[str, ...]:
        return (DOCUMENTED_HEADER, EMPTY_FIELD_HEADER)

    def configured(self, secrets: Mapping[str, str]) -> bool:
        return bool(secrets.get(self.secret))

    def verify(self, request: InboundRequest, secrets: Mapping[str, str], now: datetime) -> None:
        header = secrets.get(self.signature_header, "").lower()
        if not header:
            header = next(
                (h for h in self.headers if request.header(h) is not None),
                "",
            )
        if not header:
            raise SignatureInvalid(
                "X-Grafana-Alerting-Signature header is missing (nor is there "
                "X-Grafana-Alert-Signature, Grafana's when the contact point's Header is empty)"
            )
        self._hmac(header, secrets).verify(request, secrets, now)

    def sign(
        self, request: InboundRequest, secrets: Mapping[str, str], now: datetime
    ) -> dict[str, str]:
        # As Grafana does: its own default header when the contact point names none.
        header = secrets.get(self.signature_header, "").lower() or EMPTY_FIELD_HEADER
        return self._hmac(header, secrets).sign(request, secrets, now)

    def _hmac(self, header: str, secrets: Mapping[str, str]) -> Hmac:
        return _hmac(header, secrets.get(self.timestamp_header, "").lower(), self.secret)


@lru_cache(maxsize=256)
def _hmac(header: str, timestamp_header: str, setting: str) -> Hmac:
    if not timestamp_header:
        return Hmac(header=header, setting=setting)
    return Hmac(
        header=header,
        setting=setting,
        signed=(HeaderValue(timestamp_header), Text(":"), BODY),
        window=Window(TOLERANCE_SECONDS, header=timestamp_header),
    )
