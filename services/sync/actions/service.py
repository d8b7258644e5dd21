"""Create an issue from a chat message (SPEC §10): the integration's provider and token,
the call, exactly once per `Idempotency-Key`, the reply into the message's thread, and
`action.completed|failed` on `hookhub.integration.events`.

The order after GitHub or Jira created the issue: the answer is stored under the key
first (a retry from here on replays it), then the reply is published (its id derives from
the issue, so publishing it twice is one message to the chat product; a reply Kafka did
not take is published by the next retry with the key), then the event.
"""

from __future__ import annotations

import contextlib
import hashlib
import math
import time
from dataclasses import dataclass
from typing import Any

import orjson
import structlog

from services.sync.actions.idempotency import Claim, IdempotencyStore, InProgress, KeyReused
from services.sync.actions.metrics import ActionMetrics
from services.sync.actions.schemas import (
    GitHubIssueCreate,
    IssueBody,
    IssueCreate,
    JiraIssueCreate,
)
from shared.domain.integrations.repository import IntegrationRepository
from shared.domain.oauth.tokens import NotConnected
from shared.kernel import tracing
from shared.kernel.envelopes import (
    InboundMessage,
    IntegrationEvent,
    MessageAuthor,
    MessageSource,
    Topic,
    new_event_id,
)
from shared.kernel.errors import HookhubError, Invalid, NotFound, Unavailable
from shared.kernel.ids import derived_id, utcnow
from shared.kernel.kafka import EventPublisher
from shared.kernel.mongo import Document
from shared.providers.connections import Connections
from shared.providers.github import issues as github_issues
from shared.providers.github.issues import GitHubIssues
from shared.providers.issues import (
    CreatedIssue,
    IssueRateLimited,
    IssueRefused,
    IssueTokenRejected,
    IssueUnreachable,
    upstream_status,
)
from shared.providers.jira import adf
from shared.providers.jira.issues import JiraIssues

log = structlog.get_logger(__name__)

CREATE_ISSUE = "create_issue"
TITLES = {"github": "GitHub", "jira": "Jira"}


class ActionUnsupported(Invalid):
    code = "action_unsupported"


class WrongFields(Invalid):
    code = "invalid"


class ProviderRefusedIssue(Invalid):
    """The provider's 4xx: its own words, and a code saying which kind."""


class ProviderRateLimited(HookhubError):
    """The provider's rate limit: 503 with its wait as `Retry-After` (nothing was created)."""

    status = 503
    code = "provider_rate_limited"


@dataclass(frozen=True)
class ActionAnswer:
    status: int
    body: dict[str, Any]
    replayed: bool = False


def body_hash(action: str, request: IssueCreate) -> str:
    """The request's canonical JSON (keys sorted, defaults filled in), hashed."""
    canonical = orjson.dumps(
        {"action": action, "body": request.model_dump(mode="json")}, option=orjson.OPT_SORT_KEYS
    )
    return hashlib.sha256(canonical).hexdigest()


def _bind(**fields: Any) -> None:
    """Onto the request's canonical log line (`http_request`)."""
    structlog.contextvars.bind_contextvars(**fields)


class Actions:
    def __init__(
        self,
        *,
        integrations: IntegrationRepository,
        connections: Connections,
        github: GitHubIssues,
        jira: JiraIssues,
        store: IdempotencyStore,
        publisher: EventPublisher,
        metrics: ActionMetrics,
    ) -> None:
        self._integrations = integrations
        self._connections = connections
        self._github = github
        self._jira = jira
        self._store = store
        self._publisher = publisher
        self._metrics = metrics

    async def issue_body(self, integration_id: str) -> tuple[Document, type[IssueBody]]:
        """The integration and the body its `create-issue` takes; NotFound, or
        ActionUnsupported for a provider without issues."""
        doc = await self._integrations.get(integration_id)
        if doc is None:
            raise NotFound(f"integration {integration_id} not found")
        provider = str(doc["provider"])
        _bind(provider=provider)
        # On the request's span: its reply and events go on in its trace (the publisher's).
        tracing.annotate(
            provider=provider, integration_id=integration_id, workspace_id=doc.get("workspace_id")
        )
        if provider not in TITLES:
            self._count(provider, "unsupported")
            raise ActionUnsupported(
                f"integration {integration_id} is {provider}: issues can be created on "
                "github and jira integrations"
            )
        return doc, GitHubIssueCreate if provider == "github" else JiraIssueCreate

    async def create_issue(
        self, integration_id: str, request: IssueCreate, key: str | None
    ) -> ActionAnswer:
        action = CREATE_ISSUE
        _bind(action=action)
        doc, expected = await self.issue_body(integration_id)
        provider = str(doc["provider"])
        if not isinstance(request, expected):
            self._count(provider, "invalid")
            ordered = sorted(
                expected.model_fields.items(),
                key=lambda item: (not item[1].is_required(), item[0] in ("message", "reply")),
            )
            fields = ", ".join(name if info.is_required() else f"{name}?" for name, info in ordered)
            raise WrongFields(f"integration {integration_id} is {provider}: it takes {fields}")

        claim: Claim | None = None
        if key is not None:
            _bind(idempotency_key=key)
            try:
                found = await self._store.claim(
                    integration_id, key, action, body_hash(action, request)
                )
            except (KeyReused, InProgress) as exc:
                self._count(provider, "key_reused" if isinstance(exc, KeyReused) else "in_progress")
                raise
            if not isinstance(found, Claim):
                if found.reply is not None:
                    await self._reply(InboundMessage.model_validate(found.reply), found.id)
                self._count(provider, "replayed")
                _bind(idempotent_replayed=True)
                return ActionAnswer(found.status, found.response, replayed=True)
            claim = found

        try:
            created = await self._create(doc, request)
        except HookhubError as exc:
            if claim is not None:
                with contextlib.suppress(Exception):  # else its lease runs out
                    await self._store.release(claim)
            await self._failed(doc, action, exc, key)
            raise

        response = {
            "provider": provider,
            "key_or_number": created.key_or_number,
            "url": created.url,
        }
        reply = self._reply_envelope(doc, request, created)
        if claim is not None:
            stored = await self._store.complete(
                claim, 201, response, reply.model_dump(mode="json") if reply else None
            )
            if not stored:
                log.warning("action_claim_lost", integration_id=integration_id, key=key)
        if reply is not None:
            await self._reply(reply, claim.id if claim else None)
        await self._announce(
            doc,
            "completed",
            derived_id("action.completed", integration_id, created.id),
            {
                "action": action,
                **response,
                "idempotency_key": key,
                "message": _message_ref(request),
                "replied": reply is not None,
            },
        )
        self._count(provider, "created")
        return ActionAnswer(201, response)

    # -- the provider call ------------------------------------------------------------------

    async def _create(self, doc: Document, request: IssueCreate) -> CreatedIssue:
        provider = str(doc["provider"])
        started = time.perf_counter()
        outcome = "created"
        try:
            return await self._call(doc, request)
        except HookhubError as exc:
            outcome = _outcome(exc)
            cause = exc.__cause__
            if cause is not None and upstream_status(cause) is not None:
                _bind(upstream_status=upstream_status(cause))
            raise
        finally:
            self._metrics.provider_seconds.labels(provider, CREATE_ISSUE, outcome).observe(
                time.perf_counter() - started
            )
            _bind(outcome=outcome)

    async def _call(self, doc: Document, request: IssueCreate) -> CreatedIssue:
        """The provider's answer, its errors made ours."""
        integration_id, title = str(doc["_id"]), TITLES[str(doc["provider"])]
        try:
            if isinstance(request, GitHubIssueCreate):
                return await self._github_issue(integration_id, request)
            assert isinstance(request, JiraIssueCreate)
            return await self._jira_issue(doc, request)
        except IssueTokenRejected as exc:
            # Rejected again with the token TokenKeeper had just refreshed: the grant is
            # no good any more (app access revoked, account gone).
            reason = f"{title} rejected the refreshed token too ({exc.message})"
            await self._connections.refused(integration_id, "token_rejected", reason, whole=True)
            raise NotConnected(
                f"{reason}; the integration is now in error: reconnect it through "
                "POST /api/auth/oauth/connect"
            ) from exc
        except IssueRefused as exc:
            raise ProviderRefusedIssue(exc.message, code=exc.error) from exc
        except IssueRateLimited as exc:
            wait = str(max(1, math.ceil(exc.retry_after)))
            raise ProviderRateLimited(
                f"{exc.message}; nothing was created, retry after {wait} s",
                headers={"Retry-After": wait},
            ) from exc
        except IssueUnreachable as exc:
            raise Unavailable(exc.message, code="provider_unavailable") from exc

    async def _github_issue(self, integration_id: str, request: GitHubIssueCreate) -> CreatedIssue:
        body = github_issues.issue_body(
            request.body, request.message.quoted() if request.message else None
        )
        if len(body) > github_issues.MAX_BODY:
            raise Invalid(
                f"the issue body with the quoted message is {len(body)} characters; GitHub "
                f"takes {github_issues.MAX_BODY}",
                code="body_too_long",
            )

        async def call(token: str) -> CreatedIssue:
            return await self._github.create(
                token, request.repo, title=request.title, body=body or None, labels=request.labels
            )

        created = await self._connections.call(integration_id, call)
        _bind(upstream_status=created.upstream_status)
        return created

    async def _jira_issue(self, doc: Document, request: JiraIssueCreate) -> CreatedIssue:
        account = doc.get("account") or {}
        cloud_id = account.get("cloud_id") or account.get("id")
        if not cloud_id:
            raise NotConnected(
                f"integration {doc['_id']} has no Jira site (cloud id): connect it through "
                "POST /api/auth/oauth/connect"
            )
        site_url = account.get("url") or next(
            (
                s.get("url")
                for s in account.get("sites") or []
                if isinstance(s, dict) and s.get("id") == cloud_id
            ),
            None,
        )
        description = adf.document(
            request.description, request.message.quoted() if request.message else None
        )

        async def call(token: str) -> CreatedIssue:
            return await self._jira.create(
                token,
                str(cloud_id),
                project_key=request.project_key,
                issue_type=request.issue_type,
                summary=request.summary,
                description=description,
                site_url=site_url,
            )

        created = await self._connections.call(str(doc["_id"]), call)
        _bind(upstream_status=created.upstream_status)
        return created

    # -- what follows -----------------------------------------------------------------------

    def _reply_envelope(
        self, doc: Document, request: IssueCreate, created: CreatedIssue
    ) -> InboundMessage | None:
        """`message.received` from the provider's app, in the thread of the message."""
        message = request.message
        if not request.reply or message is None:
            return None
        provider = str(doc["provider"])
        if isinstance(request, GitHubIssueCreate):
            where = request.repo
            text = f"Created GitHub issue {request.repo}#{created.key_or_number}: {request.title}"
        else:
            assert isinstance(request, JiraIssueCreate)
            where = request.project_key
            text = f"Created Jira issue {created.key_or_number}: {request.summary}"
        return InboundMessage(
            id=derived_id("action.reply", str(doc["_id"]), created.id),
            type="message.received",
            workspace_id=str(doc["workspace_id"]),
            channel_id=message.channel_id,
            source=MessageSource(
                provider=provider,
                integration_id=str(doc["_id"]),
                external_channel_id=where,
                external_message_id=created.key_or_number,
            ),
            author=MessageAuthor(name=TITLES[provider]),
            text=f"{text}\n{created.url}",
            thread_id=message.thread_id or message.message_id,
            occurred_at=utcnow(),
        )

    async def _reply(self, reply: InboundMessage, record_id: str | None) -> None:
        """Publish the reply; a Kafka failure is the caller's 503 (the issue exists: a retry
        with the same key publishes the reply and returns the issue)."""
        try:
            await self._publisher.publish(Topic.CHAT_INBOUND, reply)
        except HookhubError as exc:
            raise Unavailable(
                f"the issue was created but its reply could not be published ({exc.message}); "
                "retry with the same Idempotency-Key to publish it without creating another "
                "issue",
                code="reply_not_published",
            ) from exc
        if record_id is not None:
            await self._store.replied(record_id)

    async def _failed(self, doc: Document, action: str, exc: HookhubError, key: str | None) -> None:
        self._count(str(doc["provider"]), _outcome(exc))
        data: dict[str, Any] = {
            "action": action,
            "error": {"code": exc.code, "message": exc.message},
            "idempotency_key": key,
            "upstream_status": upstream_status(exc.__cause__) if exc.__cause__ else None,
        }
        await self._announce(doc, "failed", new_event_id(), data)

    async def _announce(
        self, doc: Document, kind: str, event_id: str, data: dict[str, Any]
    ) -> None:
        event = IntegrationEvent(
            id=event_id,
            type="action.completed" if kind == "completed" else "action.failed",
            workspace_id=str(doc["workspace_id"]),
            integration_id=str(doc["_id"]),
            provider=str(doc["provider"]),
            occurred_at=utcnow(),
            data={name: value for name, value in data.items() if value is not None},
        )
        try:
            await self._publisher.publish(Topic.INTEGRATION_EVENTS, event)
        except HookhubError as exc:  # the issue and the stored answer are what count
            log.warning("action_event_not_published", kind=kind, error=exc.message)

    def _count(self, provider: str, outcome: str) -> None:
        self._metrics.actions.labels(provider, CREATE_ISSUE, outcome).inc()
        _bind(outcome=outcome)


def _outcome(exc: HookhubError) -> str:
    """The metrics' and log line's word for a failed action."""
    if isinstance(exc, NotConnected):
        return "not_connected"
    if isinstance(exc, ProviderRefusedIssue):
        return "refused"
    if isinstance(exc, ProviderRateLimited):
        return "rate_limited"
    if isinstance(exc, Invalid):
        return "invalid"  # our own check, before any call
    return "unavailable"


def _message_ref(request: IssueCreate) -> dict[str, str] | None:
    message = request.message
    if message is None:
        return None
    return {"channel_id": message.channel_id, "message_id": message.message_id}
