"""Silencing a Grafana Alerting group from the channel (SPEC §20): Alertmanager's silences
(shared.providers.alertmanager.acting: the same offers, target and body), posted to
Grafana's own Alertmanager through its Alertmanager-compatible API,
`POST {api_url}/api/alertmanager/grafana/api/v2/silences`, with a service account token
(`Authorization: Bearer <api_token>`; the account needs the silences' create permission,
e.g. the Editor role). Grafana answers 202 with `{"silenceID": "…"}`, a body it cannot take
with 400 `{"message": "silence failed validation: …"}`, an unknown token with 401.
Legacy alerting's rules (before Grafana 8) are no group: they offer nothing.

Checked against grafana/grafana `pkg/services/ngalert/api/tooling/definitions/
alertmanager.go` (route `RouteCreateGrafanaSilence`, body `postableSilence`, Alertmanager's
own, answer `postSilencesOKBody`), `pkg/services/ngalert/api/api_alertmanager.go`
(`RouteCreateSilence`: 202 Accepted) and Grafana's HTTP API authentication page
(https://grafana.com/docs/grafana/latest/developer-resources/api-reference/http-api/
authentication/: `Authorization: Bearer <service account token>`).
"""

from __future__ import annotations

from shared.providers.alertmanager.acting import Silences

ACTING = Silences(
    name="grafana",
    settings=("api_url", "api_token"),
    path="/api/alertmanager/grafana/api/v2/silences",
)
