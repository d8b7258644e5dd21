"""Who may POST an activity to the bot: the Bot Framework's JWT in `Authorization: Bearer`.

What is checked, as "Authentication with the Bot Connector API" lists it
(https://learn.microsoft.com/en-us/azure/bot-service/rest-api/bot-framework-rest-connector-authentication,
"Connector to bot": step 4, the token's requirements) and as the Bot Framework SDK does it
(botframework-connector 4.17.1, `botframework/connector/auth/jwt_token_extractor.py`,
`channel_validation.py`, `authentication_constants.py`):

1. the header is `Bearer <token>`;
2. the token is a JWT signed (RS256, the metadata's `id_token_signing_alg_values_supported`)
   by a key of the JWKS that the OpenID metadata's `jwks_uri` names; the key must endorse the
   activity's `channelId` (`endorsements`, as `EndorsementsValidator` does);
3. `iss` is `https://api.botframework.com`;
4. `aud` is the bot's Microsoft App ID;
5. `exp` (required) and `nbf` hold within 5 minutes of clock skew (the docs' "industry-standard
   clock-skew is 5 minutes", the SDK's `clock_tolerance=5 * 60`);
6. the `serviceurl` claim equals the activity's `serviceUrl` (`ChannelValidation.
   SERVICE_URL_CLAIM` is lower case; the docs write `serviceUrl`, which is taken too).

The keys are fetched with the metadata, kept a day (the SDK's refresh), and fetched again
sooner when a token names a key that is not among them, at most once every
`UNKNOWN_KEY_REFETCH` seconds, so that forged `kid`s cannot make hookhub hammer Microsoft.
The signature, algorithm and audience checks are PyJWT's; nothing here is hand-rolled crypto.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import datetime
from typing import Any

import httpx
import jwt

from shared.providers.base import SignatureInvalid

OPENID_METADATA_URL = "https://login.botframework.com/v1/.well-known/openidconfiguration"
ISSUER = "https://api.botframework.com"
CLOCK_SKEW_SECONDS = 5 * 60
KEYS_MAX_AGE = 24 * 3600.0
UNKNOWN_KEY_REFETCH = 5 * 60.0
# What the SDK allows (`ALLOWED_SIGNING_ALGORITHMS`), narrowed by the metadata's list.
ALLOWED_ALGORITHMS = ("RS256", "RS384", "RS512")
_MAX_TOKEN = 16 * 1024

Clock = Callable[[], float]


@dataclass(frozen=True)
class SigningKey:
    key: jwt.PyJWK
    endorsements: tuple[str, ...]


class KeysUnavailable(Exception):
    """The metadata or the JWKS could not be fetched or read."""


class BotFrameworkKeys:
    """The Bot Framework's signing keys, from `metadata_url` (the real one by default; the
    sandbox's in tests), cached `KEYS_MAX_AGE` seconds."""

    def __init__(
        self,
        client: httpx.AsyncClient,
        metadata_url: str = OPENID_METADATA_URL,
        *,
        clock: Clock = time.monotonic,
    ) -> None:
        self._client = client
        self.metadata_url = metadata_url
        self._clock = clock
        self._keys: dict[str, SigningKey] = {}
        self._algorithms: tuple[str, ...] = ("RS256",)
        self._fetched_at: float | None = None
        self._lock = asyncio.Lock()
        self.fetches = 0  # how many times the metadata was read (for the tests)

    @property
    def algorithms(self) -> tuple[str, ...]:
        return self._algorithms

    def cached(self, kid: str) -> SigningKey | None:
        """The key as last fetched, without fetching (for a synchronous caller)."""
        return self._keys.get(kid)

    async def key(self, kid: str) -> SigningKey | None:
        """The key named `kid`, fetching the keys when they are stale or lack it."""
        async with self._lock:
            now = self._clock()
            stale = self._fetched_at is None or now - self._fetched_at >= KEYS_MAX_AGE
            missing = kid not in self._keys and (
                self._fetched_at is None or now - self._fetched_at >= UNKNOWN_KEY_REFETCH
            )
            if stale or missing:
                await self._fetch()
            return self._keys.get(kid)

    async def _fetch(self) -> None:
        self.fetches += 1
        metadata = await self._json(self.metadata_url, "OpenID metadata")
        jwks_uri = metadata.get("jwks_uri")
        if not isinstance(jwks_uri, str) or not jwks_uri.startswith(("https://", "http://")):
            raise KeysUnavailable("the Bot Framework OpenID metadata has no jwks_uri")
        offered = metadata.get("id_token_signing_alg_values_supported")
        algorithms: tuple[str, ...] = ("RS256",)
        if isinstance(offered, list):
            algorithms = tuple(a for a in ALLOWED_ALGORITHMS if a in offered) or ("RS256",)
        document = await self._json(jwks_uri, "JWKS")
        keys: dict[str, SigningKey] = {}
        for data in document.get("keys") or []:
            if not isinstance(data, dict) or not isinstance(data.get("kid"), str):
                continue
            if data.get("kty") != "RSA":
                continue
            try:
                parsed = jwt.PyJWK(data, algorithm=data.get("alg") or "RS256")
            except (jwt.PyJWKError, jwt.InvalidKeyError, ValueError, TypeError):
                continue  # a key this library cannot use is skipped, as PyJWKSet does
            said = data.get("endorsements")
            endorsements = (
                tuple(e for e in said if isinstance(e, str)) if isinstance(said, list) else ()
            )
            keys[data["kid"]] = SigningKey(parsed, endorsements)
        if not keys:
            raise KeysUnavailable("the Bot Framework JWKS holds no usable RSA key")
        self._keys, self._algorithms = keys, algorithms
        self._fetched_at = self._clock()

    async def _json(self, url: str, what: str) -> dict[str, Any]:
        try:
            answer = await self._client.get(url)
        except httpx.HTTPError as exc:
            raise KeysUnavailable(f"the Bot Framework {what} is unreachable: {exc!r}") from exc
        if answer.status_code != 200:
            raise KeysUnavailable(f"the Bot Framework {what} answered {answer.status_code}")
        try:
            data = answer.json()
        except ValueError as exc:
            raise KeysUnavailable(f"the Bot Framework {what} is not JSON") from exc
        if not isinstance(data, dict):
            raise KeysUnavailable(f"the Bot Framework {what} is not a JSON object")
        return data


def bearer(authorization: str | None) -> str:
    """The token of `Authorization: Bearer <token>`, or SignatureInvalid."""
    if not authorization:
        raise SignatureInvalid("the Authorization header (Bearer <Bot Framework JWT>) is missing")
    scheme, _, token = authorization.strip().partition(" ")
    token = token.strip()
    if scheme.lower() != "bearer" or not token:
        raise SignatureInvalid("the Authorization header is not `Bearer <token>`")
    if len(token) > _MAX_TOKEN:
        raise SignatureInvalid("the bearer token is too long to be a Bot Framework JWT")
    return token


def key_id(token: str) -> str:
    """The `kid` of the token's header (unverified: it only picks the key)."""
    try:
        header = jwt.get_unverified_header(token)
    except jwt.DecodeError as exc:
        raise SignatureInvalid(f"the bearer token is not a JWT: {exc}") from exc
    kid = header.get("kid")
    if not isinstance(kid, str) or not kid:
        raise SignatureInvalid("the bearer token's header names no signing key (kid)")
    return kid


def check_token(
    token: str,
    key: SigningKey | None,
    *,
    algorithms: tuple[str, ...],
    app_id: str,
    activity: Mapping[str, Any],
    now: datetime,
) -> dict[str, Any]:
    """The token's claims once every check of the module's docstring holds; else
    SignatureInvalid saying which failed."""
    if not app_id:
        raise SignatureInvalid("the integration has no app_id to check the token's audience")
    if key is None:
        raise SignatureInvalid(
            "the bearer token is signed by a key the Bot Framework's OpenID metadata does not list"
        )
    channel_id = activity.get("channelId")
    endorsed = not key.endorsements or not isinstance(channel_id, str) or not channel_id.strip()
    if not endorsed and channel_id not in key.endorsements:
        raise SignatureInvalid(
            f"the signing key does not endorse the activity's channelId {channel_id!r}"
        )
    try:
        claims: dict[str, Any] = jwt.decode(
            token,
            key.key.key,
            algorithms=list(algorithms),
            audience=app_id,
            issuer=ISSUER,
            # The times are checked below against `now`, the request's own time.
            options={
                "verify_exp": False,
                "verify_nbf": False,
                "verify_iat": False,
                "require": ["exp", "iss", "aud"],
            },
        )
    except jwt.InvalidAlgorithmError as exc:
        raise SignatureInvalid(f"the bearer token's algorithm is not allowed: {exc}") from exc
    except jwt.InvalidSignatureError as exc:
        raise SignatureInvalid("the bearer token's signature does not verify") from exc
    except jwt.InvalidAudienceError as exc:
        raise SignatureInvalid(
            "the bearer token is not for this bot (aud is not its app id)"
        ) from exc
    except jwt.InvalidIssuerError as exc:
        raise SignatureInvalid(f"the bearer token's issuer is not {ISSUER}") from exc
    except jwt.MissingRequiredClaimError as exc:
        raise SignatureInvalid(f"the bearer token lacks a claim: {exc}") from exc
    except jwt.InvalidTokenError as exc:
        raise SignatureInvalid(f"the bearer token is not valid: {exc}") from exc
    moment = now.timestamp()
    expires = claims.get("exp")
    if not isinstance(expires, int | float) or isinstance(expires, bool):
        raise SignatureInvalid("the bearer token's exp is not a number")
    if moment > expires + CLOCK_SKEW_SECONDS:
        raise SignatureInvalid("the bearer token has expired")
    not_before = claims.get("nbf")
    if isinstance(not_before, int | float) and not isinstance(not_before, bool):
        if moment < not_before - CLOCK_SKEW_SECONDS:
            raise SignatureInvalid("the bearer token is not valid yet (nbf)")
    elif not_before is not None:
        raise SignatureInvalid("the bearer token's nbf is not a number")
    claimed = claims.get("serviceurl", claims.get("serviceUrl"))
    service_url = activity.get("serviceUrl")
    if not isinstance(claimed, str) or not isinstance(service_url, str) or claimed != service_url:
        raise SignatureInvalid("the bearer token's serviceurl is not the activity's serviceUrl")
    return claims


class BotFrameworkAuth:
    """Checks the activities POSTed to the bot's messaging endpoint."""

    def __init__(self, keys: BotFrameworkKeys) -> None:
        self.keys = keys

    async def verify(
        self,
        authorization: str | None,
        activity: Mapping[str, Any],
        app_id: str,
        now: datetime,
    ) -> dict[str, Any]:
        token = bearer(authorization)
        kid = key_id(token)
        try:
            key = await self.keys.key(kid)
        except KeysUnavailable as exc:
            raise SignatureInvalid(f"cannot check the bearer token: {exc}") from exc
        return check_token(
            token,
            key,
            algorithms=self.keys.algorithms,
            app_id=app_id,
            activity=activity,
            now=now,
        )
