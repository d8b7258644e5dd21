"""The credentials a sender that signs nothing can be given, and their settings, written once
for every provider offering them (the alerting tools: Alertmanager, Grafana, Opsgenie,
UptimeRobot, Statuspage, New Relic).

- `HEADER_TOKEN`: a header equal to a token: `Authorization: <prefix> <token>` (`Bearer` by
  default; Alertmanager's `authorization.type`, Grafana's "Authentication Header Scheme",
  New Relic's token prefix change it), or a custom header the integration names.
- `BASIC`: HTTP Basic credentials.
- `URL_TOKEN`: a token in the URL's query (`?token=`), for a sender that can put a secret
  nowhere else. It proves that the caller knows the URL, not who the caller is.

Each is one option of an `AnyOf`: the first whose settings the integration has set is the one
its requests must pass.
"""

from __future__ import annotations

from shared.providers.catalog import Setting
from shared.providers.generic import ConfiguredToken
from shared.providers.schemes import Basic, Token

# What a setting naming a header must match (an HTTP token).
HEADER_NAME = r"[A-Za-z0-9!#$%&'*+.^_`|~-]{1,100}"
# What a setting naming an API's address must match (http(s), a host, maybe a path).
API_URL = r"https?://[^\s/?#]+(/[^\s?#]*)?"

HEADER_TOKEN = ConfiguredToken()  # settings token, header, prefix
BASIC = Basic()  # settings username, password
URL_TOKEN = Token(query="token", setting="url_token")


def token_settings(where: str, *, required: bool = False) -> tuple[Setting, ...]:
    """`token` (given to the sender `where` says), the `header` holding it and its `prefix`."""
    return (
        Setting(
            "token",
            f"a long random token (`openssl rand -hex 32`), given to the sender as {where}",
            required=required,
        ),
        Setting(
            "header",
            "the header the sender puts the token in (default Authorization)",
            secret=False,
            required=False,
            pattern=HEADER_NAME,
        ),
        Setting(
            "prefix",
            "what precedes the token in the header: the Authorization scheme (default "
            "`Bearer` on Authorization, none on another header)",
            secret=False,
            required=False,
            pattern=r"[!-~]{1,40}",
        ),
    )


def basic_settings(where: str) -> tuple[Setting, ...]:
    return (
        Setting("username", f"the Basic username given to the sender ({where})", required=False),
        Setting(
            "password",
            f"the Basic password given to the sender ({where}): long and random",
            required=False,
        ),
    )


URL_TOKEN_SETTING = Setting(
    "url_token",
    "a long random token, 32 to 200 of A-Z, a-z, 0-9, _ and - (`openssl rand -hex 32`), "
    "that the sender's URL carries as `?token=<url_token>`: it proves the caller knows the "
    "URL, not who the caller is",
    required=False,
    pattern=r"[A-Za-z0-9_-]{32,200}",
)
