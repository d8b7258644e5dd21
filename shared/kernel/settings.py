"""Configuration: one `HOOKHUB_`-prefixed settings base every service extends (SPEC §3)."""

from __future__ import annotations

import os
import re
import secrets
import socket
from collections.abc import Callable
from datetime import timedelta
from functools import cached_property
from pathlib import Path
from typing import Annotated, Any, Literal, Self

from cryptography.fernet import Fernet
from pydantic import BeforeValidator, Field, field_validator, model_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

from shared.kernel.http import origins

SERVICE_PORTS: dict[str, int] = {
    "gateway": 8081,
    "delivery": 8082,
    "oauth": 8083,
    "sync": 8084,
    "importer": 8085,
}


class ConfigurationError(RuntimeError):
    """The environment does not describe a runnable hookhub."""


_DURATION_PART = re.compile(r"(\d+)([wdhms])")
_UNIT_SECONDS = {"w": 604_800, "d": 86_400, "h": 3_600, "m": 60, "s": 1}


def parse_duration(value: Any) -> Any:
    """`30d`, `12h`, `90s`, `15m`, `2w` or a sum such as `1d12h`; a bare number is
    seconds. Anything else is left to pydantic's own timedelta parsing (ISO 8601)."""
    if isinstance(value, int | float) and not isinstance(value, bool):
        return timedelta(seconds=value)
    if not isinstance(value, str):
        return value
    text = value.strip().lower()
    if text.isdigit():
        return timedelta(seconds=int(text))
    parts = _DURATION_PART.findall(text)
    if parts and "".join(n + u for n, u in parts) == text:
        return timedelta(seconds=sum(int(n) * _UNIT_SECONDS[u] for n, u in parts))
    if re.fullmatch(r"[\d.]+[a-z]*", text):
        raise ValueError(f"not a duration: {value!r} (examples: 30d, 12h, 15m, 90s)")
    return value


# A length of time in the environment: `HOOKHUB_DELIVERY_RETENTION=30d`.
Duration = Annotated[timedelta, BeforeValidator(parse_duration), Field(gt=timedelta(0))]


class Settings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="HOOKHUB_", extra="ignore")

    env: Literal["dev", "production"] = "dev"
    data_dir: Path = Path(".hookhub")

    kafka_bootstrap: str = "127.0.0.1:9092"
    kafka_publish_timeout_seconds: float = Field(5.0, gt=0)
    kafka_partitions: int = Field(6, ge=1)
    kafka_max_message_bytes: int = Field(1024 * 1024, ge=1024)
    kafka_replication_factor: int = Field(1, ge=1)
    # How long a consumer may go without a heartbeat before its group gives its partitions
    # to the others. Also how long tansu makes a restarted consumer wait to join (it waits
    # out the member that left; Kafka lets a leaving member go at once).
    kafka_session_timeout_ms: int = Field(10_000, ge=1_000)
    # How long the broker may hold a consumer's fetch while it has nothing new (Kafka's own
    # default): Kafka answers as soon as records arrive, so this is no latency, only how
    # often an idle consumer asks. tansu (the embedded broker) answers at once only a fetch
    # of one partition, so `hookhub run` makes its topics of one partition, and a harness
    # that gives tansu topics of several asks every EMBEDDED_FETCH_MAX_WAIT_MS
    # (shared.kernel.embedded).
    kafka_fetch_max_wait_ms: int = Field(500, ge=1, le=60_000)
    # Prepended to every topic and consumer group ("<namespace>.hookhub.chat.events"); empty in
    # production. Tests set it so concurrent runs against one broker never see each other.
    topic_namespace: str = ""

    mongo_uri: str = "mongodb://127.0.0.1:27017"
    mongo_db: str = "hookhub"
    mongo_timeout_seconds: float = Field(3.0, gt=0)

    # How often each process re-reads the API keys and portal sessions issued, revoked or
    # ended elsewhere (SPEC §13: a revoked key is refused everywhere within 5 s).
    api_key_refresh_seconds: float = Field(1.0, gt=0, le=4)

    # How long the audit log (shared.domain.audit) keeps an entry: a TTL index on its time, so
    # MongoDB removes it within a minute or so after (SPEC §13, §14).
    audit_retention_days: int = Field(365, ge=1, le=36_500)

    # What hookhub keeps and for how long (SPEC §14, docs/operations.md "Retention"): a
    # delivery and its attempts this long after it ended (also the window the usage counts
    # of `GET /api/usage` cover, shared.domain.usage); an import upload this long after
    # its job ended; a claim-checked body this long after it was received, and never
    # before every consumer group is past its record. Removed in batches of
    # `retention_batch_size` by one replica at a time, a pass every
    # `retention_interval_seconds`.
    delivery_retention: Duration = timedelta(days=30)
    import_upload_retention: Duration = timedelta(days=7)
    claim_check_retention: Duration = timedelta(days=7)
    retention_interval_seconds: float = Field(60.0, gt=0)
    retention_batch_size: int = Field(1000, ge=1, le=10_000)

    # The bounded stop (shared.kernel.shutdown): a service asked to stop has exited within this.
    shutdown_seconds: float = Field(10.0, gt=0, le=300)

    # Empty: the single origin on this machine, http://127.0.0.1:<http_port>, so that a stack
    # moved to another port hands out URLs of its own and not of whatever holds :8080.
    public_url: str = ""
    http_host: str = "127.0.0.1"
    http_port: int = 8080
    # The single origin's limits on a slow client (services/edge.py): its request head must
    # arrive within the first; its body get going within the second, and keep coming.
    edge_header_timeout_seconds: float = Field(10.0, gt=0)
    edge_body_timeout_seconds: float = Field(20.0, gt=0)
    # The sites whose pages may show the portal in a frame (its CSP's `frame-ancestors`):
    # origins separated by spaces (shared.kernel.http.origins). Empty: none may, the console's
    # own rule. The operator console at `/` can never be framed.
    portal_frame_ancestors: str = ""

    admin_token: str = ""
    # The largest request body a management route reads (413 past it); a route may name a
    # larger setting of its own (shared.kernel.http.limits.max_body). The ingress has its own.
    api_max_body_bytes: int = Field(1024 * 1024, ge=1024)
    encryption_keys: str = ""
    egress_allow_cidrs: str = ""

    # App-level provider configuration (SPEC §3); `PUT /api/providers/{provider}` wins over
    # these, and an integration's own setting over both.
    slack_client_id: str = ""
    slack_client_secret: str = ""
    slack_signing_secret: str = ""
    # The Slack app's tier for conversations.history|replies, which imports read (the
    # app's `history_tier` of PUT /api/providers/slack wins): tier3 (internal and Marketplace
    # apps, ~50 requests a minute; the default) or limited (other commercially distributed
    # apps: 1 a minute, 15 messages a page).
    slack_history_tier: Literal["", "tier3", "limited"] = ""
    discord_client_id: str = ""
    discord_client_secret: str = ""
    discord_public_key: str = ""
    github_client_id: str = ""
    github_client_secret: str = ""
    jira_client_id: str = ""
    jira_client_secret: str = ""
    gitlab_client_id: str = ""
    gitlab_client_secret: str = ""
    google_client_id: str = ""
    google_client_secret: str = ""
    telegram_api_base: str = "https://api.telegram.org"
    # Mattermost: no URL of its own (each integration's `server_url` names its server); how
    # often its WebSocket is pinged, so that a dead connection shows within that.
    mattermost_ping_seconds: float = Field(20.0, gt=0)
    # Matrix (shared/providers/matrix): no URL of its own (each integration's
    # `homeserver_url` names its homeserver); how many integrations' MatrixChats (puppet
    # registry, profile and room caches) sync keeps at once, the least recently used dropped.
    matrix_max_chats: int = Field(512, ge=1)
    provider_timeout_seconds: float = Field(10.0, gt=0)
    # OAuth endpoint and API overrides (SPEC §3); empty means the provider's own URL, which
    # its definition under shared/providers/<name>/oauth.py holds. Tests point them at fakes.
    slack_authorize_url: str = ""
    slack_token_url: str = ""
    slack_revoke_url: str = ""
    slack_api_base: str = ""
    # Slack takes PKCE only from apps that enabled it in their settings.
    slack_pkce: bool = False
    discord_authorize_url: str = ""
    discord_token_url: str = ""
    discord_revoke_url: str = ""
    discord_api_base: str = ""
    github_authorize_url: str = ""
    github_token_url: str = ""
    github_revoke_url: str = ""
    github_api_base: str = ""
    jira_authorize_url: str = ""
    jira_token_url: str = ""
    jira_revoke_url: str = ""
    jira_api_base: str = ""
    # GitLab: gitlab.com's, or a self-managed instance's (`https://gitlab.example.com/oauth/…`,
    # `…/api/v4`); its OAuth is a chat user's own consent (account links, SPEC §20).
    gitlab_authorize_url: str = ""
    gitlab_token_url: str = ""
    gitlab_revoke_url: str = ""
    gitlab_api_base: str = ""
    google_authorize_url: str = ""
    google_token_url: str = ""
    google_revoke_url: str = ""
    google_api_base: str = ""
    # The APIs acted on from the channel with an integration's token (SPEC §20,
    # shared.providers.actors): empty for the provider's own.
    pagerduty_api_base: str = "https://api.pagerduty.com"
    opsgenie_api_base: str = "https://api.opsgenie.com"
    sentry_api_base: str = "https://sentry.io"
    # Google Chat (shared/providers/googlechat): the Chat API, Google's token endpoint for
    # the app's service account, and the certificates Chat's bearer tokens are signed with
    # (an ID token's for an endpoint-URL audience, chat@system's for a project number).
    googlechat_api_base: str = "https://chat.googleapis.com"
    googlechat_token_url: str = "https://oauth2.googleapis.com/token"  # noqa: S105 - a URL
    googlechat_oauth2_certs_url: str = "https://www.googleapis.com/oauth2/v1/certs"
    googlechat_chat_certs_url: str = (
        "https://www.googleapis.com/service_accounts/v1/metadata/x509/"
        "chat@system.gserviceaccount.com"
    )

    # Microsoft Teams (shared/providers/teams): the Bot Framework's OpenID metadata (the keys
    # its activities' tokens are signed with), Microsoft's login (the bot's client
    # credentials), and the Connector serviceUrl used before a channel's own is known.
    teams_openid_metadata_url: str = (
        "https://login.botframework.com/v1/.well-known/openidconfiguration"
    )
    teams_login_base: str = "https://login.microsoftonline.com"
    teams_service_url: str = "https://smba.trafficmanager.net/teams/"

    # OAuth tokens, refreshed by every service that calls provider APIs (shared.domain.oauth.tokens)
    # and ahead of expiry by the oauth service's loop: a token is refreshed this long before
    # it expires, but never earlier than half its lifetime.
    oauth_refresh_margin_seconds: float = Field(600.0, gt=0)
    # How long one process may hold an integration's refresh before another may take over.
    oauth_lease_seconds: float = Field(30.0, ge=2)
    # How often the oauth service looks for tokens due and revocations to retry.
    oauth_poll_seconds: float = Field(15.0, gt=0)

    log_level: str = "INFO"
    log_format: Literal["auto", "json", "console"] = "auto"

    @field_validator("portal_frame_ancestors")
    @classmethod
    def _origins_only(cls, value: str) -> str:
        return origins.frame_ancestors(value)

    @model_validator(mode="after")
    def _public_url_follows_the_port(self) -> Settings:
        if not self.public_url:
            self.public_url = f"http://127.0.0.1:{self.http_port}"
        return self

    @model_validator(mode="after")
    def _production_needs_secrets(self) -> Settings:
        if self.env == "production":
            missing = [
                name
                for name, value in (
                    ("HOOKHUB_ADMIN_TOKEN", self.admin_token),
                    ("HOOKHUB_ENCRYPTION_KEYS", self.encryption_keys),
                )
                if not value
            ]
            if missing:
                raise ConfigurationError(
                    f"HOOKHUB_ENV=production refuses to start without {', '.join(missing)}"
                )
        return self

    def resolve_dev_secrets(self) -> Self:
        """Fill the admin token and encryption key from the data dir, generating them once.

        Only in dev: production must be given both (checked at construction).
        """
        if self.env != "dev":
            return self
        self.data_dir.mkdir(mode=0o700, parents=True, exist_ok=True)
        if not self.admin_token:
            self.admin_token = _kept_secret(self.data_dir / "admin_token", _new_admin_token)
        if not self.encryption_keys:
            self.encryption_keys = _kept_secret(
                self.data_dir / "encryption_key", lambda: Fernet.generate_key().decode()
            )
        if not self.egress_allow_cidrs:
            self.egress_allow_cidrs = "127.0.0.0/8,::1/128"
        self.__dict__.pop("encryption_key_list", None)
        return self

    def sandbox_refused(self) -> str | None:
        """Why the sandbox may not run here (None: it may). `hookhub sandbox` and `hookhub run
        --sandbox` both ask, before they import it: its stand-ins hand out made-up
        credentials to anyone on loopback."""
        if self.env == "dev":
            return None
        return (
            "hookhub: the sandbox runs only with HOOKHUB_ENV=dev: its stand-ins hand out made-up "
            "credentials and answer anyone on loopback"
        )

    @cached_property
    def encryption_key_list(self) -> list[str]:
        return [key.strip() for key in self.encryption_keys.split(",") if key.strip()]

    def topic(self, name: str) -> str:
        return f"{self.topic_namespace}.{name}" if self.topic_namespace else name

    def consumer_group(self, service: str, purpose: str) -> str:
        return self.topic(f"hookhub.{service}.{purpose}")


def _new_admin_token() -> str:
    return "hh_admin_" + secrets.token_urlsafe(32)


def _kept_secret(path: Path, generate: Callable[[], str]) -> str:
    """The secret kept in `path` (readable by its owner alone), generated on first use."""
    if path.exists():
        path.chmod(0o600)  # kept by an earlier version, perhaps readable by all
        return path.read_text().strip()
    value = generate()
    with os.fdopen(os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600), "w") as file:
        file.write(value + "\n")
    return value


class ServiceSettings(Settings):
    """Settings of one `hookhub serve <name>` process."""

    port: int = 0  # 0: the service's default port from SERVICE_PORTS
    # Where the service's other replicas reach this one (the chart sets the pod's address):
    # delivery hands a `hookhub listen` delivery to the replica holding its socket (SPEC
    # §21). Empty: http://127.0.0.1:<port>, right while one process of it runs per host.
    # `{host_ip}` in it is the address this host's name resolves to (a container's own,
    # which Docker writes in its /etc/hosts: compose's replicas).
    internal_url: str = ""

    def port_for(self, service: str) -> int:
        return self.port or SERVICE_PORTS[service]

    def internal_address(self, service: str) -> str:
        url = self.internal_url or f"http://127.0.0.1:{self.port_for(service)}"
        if "{host_ip}" in url:
            url = url.replace("{host_ip}", socket.gethostbyname(socket.gethostname()))
        return url.rstrip("/")


class GatewaySettings(ServiceSettings):
    incoming_max_body_bytes: int = Field(1024 * 1024, ge=1024)
    # How often each gateway replica re-reads webhook and integration changes made elsewhere.
    cache_refresh_seconds: float = Field(2.0, gt=0)
    # Redeliveries within this window are acknowledged without a second publish (≥ 24 h;
    # GitHub lets users redeliver for 3 days).
    dedupe_window_seconds: int = Field(3 * 24 * 3600, ge=24 * 3600)
    # Each replica keeps the window's ids in memory (about 2 bytes each) so that only likely
    # redeliveries query MongoDB; more ids than this and lookups go to MongoDB. 0: always.
    dedupe_memory_max_ids: int = Field(20_000_000, ge=0)
    # How often each replica reads the ids other replicas recorded.
    dedupe_memory_poll_seconds: float = Field(1.0, gt=0)
    # Per integration and replica, unless the integration sets its own.
    default_rate_limit_per_second: float = Field(500.0, gt=0)


class DeliverySettings(ServiceSettings):
    # An endpoint failing every attempt for this long is disabled (Svix's default: 5 days).
    failure_window_seconds: int = Field(5 * 24 * 3600, ge=1)
    # How long after a delivery process's last heartbeat (sent every third of this) the
    # others take over the deliveries it held.
    lease_seconds: float = Field(60.0, ge=5)
    # How often due retries (and deliveries a dead process held) are looked for.
    scheduler_poll_seconds: float = Field(0.5, gt=0)
    # The most deliveries one process holds in memory, queued in its lanes or in flight,
    # each with its body (a few KB typically; as large as the event). Beyond it they wait in
    # MongoDB, so a backlog after an outage comes in in pieces. A delivery keeps its room
    # until its outcome is written, so this also bounds what waits for MongoDB. 1,000: a few
    # seconds of what one process sends and records at best (docs/benchmarks.md), so its
    # lanes do not run dry between two polls; a few MB of bodies.
    delivery_max_held: int = Field(1000, ge=1)
    # The most attempts one process has out at once, over all its endpoints (each at most
    # its own `max_concurrency` and a quarter of these): each is a connection, and a burst
    # of them (every lane catching up at once after an outage) leaves the process the memory
    # it took. 128: a hundred endpoints answering within a second each at 1 event/s, or
    # thousands of deliveries/s to quick ones; beyond it, more replicas (KEDA scales on lag).
    delivery_max_in_flight: int = Field(128, ge=1)
    # How long fan-out waits, per batch of events, for room to hold what it writes before
    # it writes the rest held by nobody (for the scheduler to claim): meanwhile the batch's
    # offsets wait, so a backlog stays in Kafka, where it costs nothing and shows as lag
    # (what KEDA scales on). 0: never wait.
    delivery_fanout_wait_seconds: float = Field(60.0, ge=0)
    # A delivery made from a consumed batch is written once, with its first outcome, and the
    # batch's offsets wait for that. One not ended this long after its fan-out (a slow
    # endpoint, a long queue) is written pending, held by this process, so that a slow
    # endpoint never holds a partition's commit; its outcome is then an update.
    delivery_hold_seconds: float = Field(2.0, gt=0)
    # The most outcomes one process has sent and not yet written to MongoDB: its lanes send
    # no more until the writer catches up. These (and the attempts out, each endpoint's
    # `max_concurrency` at most) are what a kill -9 can have sent unrecorded, so what the
    # next owner sends again (docs/operations.md). The writer flushes once half of them
    # wait, so 64 lets one flush be written while the next fills.
    delivery_max_unwritten: int = Field(64, ge=1)
    # An endpoint's circuit breaker (SPEC §17): once open, the first probe after this long;
    # each failed probe doubles it, up to the maximum.
    circuit_cool_down_seconds: float = Field(30.0, gt=0)
    circuit_max_cool_down_seconds: float = Field(600.0, gt=0)
    # The event type catalog (SPEC §17): true refuses an event whose type it does not hold
    # (422 at the API, dead-lettered from Kafka); false keeps types an open set (SPEC §6).
    event_types_strict: bool = False
    # Destinations (SPEC §21): where every AWS call goes instead of AWS's own endpoints (an
    # emulator: moto's server, LocalStack), and Pub/Sub's REST calls (its emulator's
    # `http://host:port`, unauthenticated). Unset: the services themselves.
    aws_endpoint_url: str | None = None
    pubsub_endpoint_url: str | None = None
    # The most a delivery handed from one replica to another may be: the largest listen
    # frame (16 MiB) with room for its JSON escapes.
    listen_hop_max_body_bytes: int = Field(40 * 1024 * 1024, ge=1024)


class SyncSettings(ServiceSettings):
    # How often each replica re-reads mappings and integrations changed elsewhere.
    cache_refresh_seconds: float = Field(2.0, gt=0)
    # How long after a sync process's last heartbeat (sent every third of this) the others
    # take over the outbox jobs it held.
    sync_lease_seconds: float = Field(30.0, ge=2)
    # How often jobs released by a stopping process or held by a dead one are looked for.
    sync_poll_seconds: float = Field(0.5, gt=0)
    # Passing failures (provider unreachable) are retried after 1 s, 2 s, ... up to this.
    sync_max_backoff_seconds: float = Field(300.0, ge=1)
    # Multiplies each provider's per-channel pacing (Slack ~1 write/s per channel). 0 turns
    # pacing off (a provider's 429 is still honoured); for load tests against a fake only.
    sync_pace_factor: float = Field(1.0, ge=0)
    # How long a batch of chat events waits for the posts and clicks it handed over
    # unwritten before it has those still running written (the outbox, the clicks' queue)
    # and commits its offsets.
    sync_spill_seconds: float = Field(5.0, gt=0)
    # Simultaneous HTTP connections to the providers' APIs from one replica (one pool for
    # all providers).
    sync_max_connections: int = Field(200, ge=1)
    # The most messages one mapping's catch-up brings in (the oldest first), after sync was
    # down or a Discord Gateway session could not be resumed.
    sync_catch_up_max_messages: int = Field(5000, ge=1)
    # How often each replica writes the subscriptions' counts (`notified_count`,
    # `filtered_count`, `last_notified_at`, `last_error`): one update per subscription that
    # changed, so a thousand busy subscriptions cost a thousand updates per interval.
    sync_notification_counts_seconds: float = Field(10.0, gt=0)
    # How long after an item's thread resolved a notification that opens it again (an alert
    # firing again) reopens that thread; later, it starts a new thread (SPEC §16).
    sync_reopen_seconds: float = Field(3600.0, ge=0)


class ImporterSettings(ServiceSettings):
    # How long after an importer's last lease renewal (every third of this) another replica
    # (or the restarted one) takes its job over from the job's checkpoint.
    import_lease_seconds: float = Field(30.0, ge=2)
    # How often queued jobs, and jobs whose importer died, are looked for.
    import_poll_seconds: float = Field(1.0, gt=0)
    # Progress, checkpoint and `import.progress` at most this often (SPEC §9: every 2 s);
    # also how soon a running job hears a cancel, whatever it is waiting for.
    import_progress_seconds: float = Field(2.0, gt=0)
    # Messages published (and entered in the message map) together.
    import_batch_size: int = Field(1000, ge=1, le=10_000)
    # A Slack export upload: the most bytes accepted (413 past it, read as it streams).
    import_max_upload_bytes: int = Field(4 * 2**30, ge=1024)
    # Zip-bomb limits: the export's total uncompressed size, and one member's compression
    # ratio (members under 1 MiB are not held to it).
    import_max_uncompressed_bytes: int = Field(40 * 2**30, ge=1024)
    import_max_ratio: float = Field(200.0, ge=1)
    # Each file of an export costs the importer about 100-120 bytes while its job runs (the
    # ZIP's compact directory, shared/kernel/zipdir.py): 500,000 files take about 60 MB of it.
    import_max_members: int = Field(500_000, ge=1)
    # Where an importer copies an export from GridFS to read it (a local disk).
    import_scratch_dir: Path | None = None
