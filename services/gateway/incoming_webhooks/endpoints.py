"""HTTP routes: `/api/incoming-webhooks` (management) and `/api/webhooks/incoming/{token}`
(Slack's format) with `/slack`, `/discord` and `/teams` beside it."""

from __future__ import annotations

from collections.abc import Callable
from typing import Annotated, Any

from fastapi import APIRouter, Depends, Path, Response, status

from services.gateway.incoming_webhooks.cache import TokenCache
from services.gateway.incoming_webhooks.repository import COLLECTION, IncomingWebhookRepository
from services.gateway.incoming_webhooks.schemas import (
    IncomingWebhookCreate,
    IncomingWebhookOut,
    IncomingWebhookUpdate,
)
from services.gateway.incoming_webhooks.service import (
    SOURCE_PROVIDER,
    Accepted,
    Post,
    new_token,
    read_discord,
    read_slack,
    read_teams,
    to_inbound_message,
)
from services.gateway.incoming_webhooks.templates import templated_message
from shared.domain.templates import Templates
from shared.domain.usage import UsageCounters
from shared.kernel import tracing
from shared.kernel.crypto import fingerprint
from shared.kernel.envelopes import Topic
from shared.kernel.errors import BadRequest, Forbidden, NotFound
from shared.kernel.http.app import from_state, runtime_of
from shared.kernel.http.auth import Authenticated
from shared.kernel.http.errors import MANAGEMENT_ERRORS
from shared.kernel.http.ingress import IngressRequest, IngressRoute, RawResponse
from shared.kernel.http.pagination import Page, PageDep
from shared.kernel.ids import new_id, utcnow
from shared.kernel.mongo import BatchedWriter, Document
from shared.kernel.runtime import Runtime
from shared.kernel.settings import GatewaySettings

management = APIRouter(
    prefix="/api/incoming-webhooks",
    tags=["incoming webhooks"],
    dependencies=[Authenticated],
    responses=MANAGEMENT_ERRORS,
)


RepositoryDep = Annotated[
    IncomingWebhookRepository, Depends(from_state("incoming_repository", IncomingWebhookRepository))
]
CacheDep = Annotated[TokenCache, Depends(from_state("incoming_cache", TokenCache))]
TemplatesDep = Annotated[Templates, Depends(from_state("templates", Templates))]
RuntimeDep = Annotated[Runtime, Depends(runtime_of)]
HookId = Annotated[str, Path(max_length=200)]


def _out(doc: Document, runtime: Runtime) -> IncomingWebhookOut:
    token = runtime.secrets.decrypt(doc["token_enc"])
    return IncomingWebhookOut.model_validate(
        {
            **doc,
            "id": doc["_id"],
            "url": f"{runtime.settings.public_url.rstrip('/')}/api/webhooks/incoming/{token}",
            "message_count": doc.get("message_count", 0),
            "last_message_at": doc.get("last_message_at"),
            "description": doc.get("description"),
            "default_username": doc.get("default_username"),
            "default_icon_url": doc.get("default_icon_url"),
            "template": doc.get("template"),
            "last_error": doc.get("last_error"),
        }
    )


def _token_fields(runtime: Runtime) -> dict[str, str]:
    token = new_token()
    return {"token_hash": fingerprint(token), "token_enc": runtime.secrets.encrypt(token)}


@management.post("", status_code=status.HTTP_201_CREATED, response_model=IncomingWebhookOut)
async def create_incoming_webhook(
    body: IncomingWebhookCreate,
    repository: RepositoryDep,
    cache: CacheDep,
    runtime: RuntimeDep,
    templates: TemplatesDep,
) -> IncomingWebhookOut:
    await templates.check(body.template)
    now = utcnow()
    doc: Document = {
        "_id": new_id("iwh"),
        **body.model_dump(mode="json"),
        **_token_fields(runtime),
        "message_count": 0,
        "last_message_at": None,
        "created_at": now,
        "updated_at": now,
        "deleted_at": None,
    }
    await repository.insert(doc)
    cache.apply(doc)
    return _out(doc, runtime)


@management.get("", response_model=Page[IncomingWebhookOut])
async def list_incoming_webhooks(
    repository: RepositoryDep, runtime: RuntimeDep, page: PageDep, workspace_id: str | None = None
) -> Page[IncomingWebhookOut]:
    docs, next_cursor = await repository.page(
        workspace_id=workspace_id, limit=page.limit, cursor=page.cursor
    )
    return Page(data=[_out(doc, runtime) for doc in docs], next_cursor=next_cursor)


@management.get("/{hook_id}", response_model=IncomingWebhookOut)
async def get_incoming_webhook(
    hook_id: HookId, repository: RepositoryDep, runtime: RuntimeDep
) -> IncomingWebhookOut:
    doc = await repository.get(hook_id)
    if doc is None:
        raise NotFound(f"incoming webhook {hook_id} not found")
    return _out(doc, runtime)


@management.patch("/{hook_id}", response_model=IncomingWebhookOut)
async def update_incoming_webhook(
    hook_id: HookId,
    body: IncomingWebhookUpdate,
    repository: RepositoryDep,
    cache: CacheDep,
    runtime: RuntimeDep,
    templates: TemplatesDep,
) -> IncomingWebhookOut:
    fields: dict[str, Any] = body.model_dump(mode="json", exclude_unset=True)
    await templates.check(fields.get("template"))
    doc = await (repository.update(hook_id, fields) if fields else repository.get(hook_id))
    if doc is None:
        raise NotFound(f"incoming webhook {hook_id} not found")
    cache.apply(doc)
    return _out(doc, runtime)


@management.delete("/{hook_id}", status_code=status.HTTP_204_NO_CONTENT)
async def delete_incoming_webhook(
    hook_id: HookId, repository: RepositoryDep, cache: CacheDep
) -> Response:
    if not await repository.soft_delete(hook_id):
        raise NotFound(f"incoming webhook {hook_id} not found")
    cache.apply({"_id": hook_id, "deleted_at": utcnow()})
    return Response(status_code=status.HTTP_204_NO_CONTENT)


@management.post("/{hook_id}/rotate-token", response_model=IncomingWebhookOut)
async def rotate_incoming_webhook_token(
    hook_id: HookId, repository: RepositoryDep, cache: CacheDep, runtime: RuntimeDep
) -> IncomingWebhookOut:
    doc = await repository.update(hook_id, _token_fields(runtime))
    if doc is None:
        raise NotFound(f"incoming webhook {hook_id} not found")
    cache.apply(doc)
    return _out(doc, runtime)


async def _publish(request: IngressRequest, read: Reader) -> Accepted | None:
    """The checks every incoming-webhook route makes, the body read by `read` (or rendered
    by the hook's template), and the message published: returns once it is on Kafka, so
    the caller's 2xx means accepted; None when the template skipped the post."""
    state = request.app.state
    runtime: Runtime = state.runtime
    cache: TokenCache = state.incoming_cache
    settings = runtime.settings
    assert isinstance(settings, GatewaySettings)
    token = request.path_params["token"]
    hook = await cache.lookup_token(token) if len(token) <= _MAX_TOKEN else None
    if hook is None:
        raise NotFound("no incoming webhook has this token", code="unknown_token")
    if not hook.enabled:
        raise Forbidden("this incoming webhook is disabled", code="webhook_disabled")
    idempotency_key = request.headers.get("idempotency-key")
    if idempotency_key is not None and not 0 < len(idempotency_key) <= _MAX_IDEMPOTENCY_KEY:
        raise BadRequest("Idempotency-Key must be 1-200 characters", code="bad_idempotency_key")
    body = await request.body(settings.incoming_max_body_bytes)
    counters: BatchedWriter = state.counters
    if hook.template is not None:  # SPEC §16: the hook's template renders the post
        message = await templated_message(
            state.templates, counters, hook, body, request.headers, idempotency_key, read
        )
        if message is None:  # skipped by the template: accepted, nothing to show
            return None
    else:
        post = read(body, request.headers.get("content-type", "application/json"))
        message = to_inbound_message(hook, post, idempotency_key)
    tracing.annotate(
        envelope_id=message.id,
        workspace_id=hook.workspace_id,
        event_type="message.received",
        provider=SOURCE_PROVIDER,
        integration_id=hook.id,
    )
    await runtime.publisher.publish_encoded(Topic.CHAT_INBOUND, [message.encoded])
    counters.bump(COLLECTION, hook.id, "message_count", set_max={"last_message_at": utcnow()})
    usage: UsageCounters = state.usage
    usage.event(hook.workspace_id, "incoming")
    return message


async def post_incoming_webhook(request: IngressRequest) -> RawResponse:
    """Slack's body; 200 `ok` only once the message is on Kafka, as Slack answers."""
    await _publish(request, read_slack)
    return _OK


async def post_discord_webhook(request: IngressRequest) -> RawResponse:
    """Discord's Execute Webhook body: 204, or with `?wait=true` 200 and the message (its
    `id`, `channel_id` and `content`), as Discord answers; only once it is on Kafka."""
    message = await _publish(request, read_discord)
    if message is None or request.query_params.get("wait", "").lower() not in ("true", "1"):
        return RawResponse(204)
    reply = {
        "id": message.id,
        "type": 0,
        "channel_id": message.channel_id,
        "webhook_id": message.integration_id,
        "content": message.text,
        "timestamp": message.occurred_at.isoformat(),
    }
    return RawResponse.json(reply)


async def post_teams_webhook(request: IngressRequest) -> RawResponse:
    """A Teams MessageCard or Workflows message; 202, as Workflows' webhooks answer, only
    once it is on Kafka."""
    await _publish(request, read_teams)
    return RawResponse(202)


Reader = Callable[[bytes, str], Post]
_MAX_TOKEN = 200
_MAX_IDEMPOTENCY_KEY = 200
_OK = RawResponse(200, b"ok", "text/plain")
_PATH = "/api/webhooks/incoming/{token}"
_HEADERS = {"Idempotency-Key": "retries with the same key give the same envelope id"}
_COMMON = {
    400: "malformed JSON (or form, for Slack's)",
    403: "the incoming webhook is disabled",
    404: "unknown or revoked token",
    413: "body over the limit",
    503: "Kafka unavailable: nothing was accepted, retry",
}
_SLACK = {
    200: "`ok`: the message is on Kafka",
    **_COMMON,
    422: "no text, attachments or blocks",
}
_SLACK_MEDIA = ("application/json", "application/x-www-form-urlencoded")
# Discord and Teams take JSON; a JSON body labelled as a form (`curl -d`) is read as JSON.
_JSON_MEDIA = _SLACK_MEDIA

INGRESS = [
    IngressRoute(
        _PATH,
        post_incoming_webhook,
        summary="Post a message to an incoming webhook (Slack's JSON or payload= form)",
        responses=_SLACK,
        request_media_types=_SLACK_MEDIA,
        headers=_HEADERS,
    ),
    IngressRoute(
        _PATH + "/slack",
        post_incoming_webhook,
        summary="Post a message to an incoming webhook in Slack's format",
        responses=_SLACK,
        request_media_types=_SLACK_MEDIA,
        headers=_HEADERS,
    ),
    IngressRoute(
        _PATH + "/discord",
        post_discord_webhook,
        summary="Post a message to an incoming webhook in Discord's format (Execute Webhook)",
        responses={
            200: "with `?wait=true`: the message (`id`, `channel_id`, `content`), on Kafka",
            204: "the message is on Kafka",
            **_COMMON,
            422: "neither content nor an embed to show",
        },
        request_media_types=_JSON_MEDIA,
        headers=_HEADERS,
    ),
    IngressRoute(
        _PATH + "/teams",
        post_teams_webhook,
        summary="Post a message to an incoming webhook in Microsoft Teams' format "
        "(a MessageCard, or a Workflows message with Adaptive Cards)",
        responses={
            202: "the message is on Kafka",
            **_COMMON,
            422: "neither a MessageCard nor an Adaptive Card attachment",
        },
        request_media_types=_JSON_MEDIA,
        headers=_HEADERS,
    ),
]
