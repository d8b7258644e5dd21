"""CircleCI's webhooks rendered (SPEC §16): a workflow that failed on a branch opens a
thread that its next success there closes, posted only in that thread; outside text stays
text. Payloads from shared/providers/circleci/samples (their README says where each comes
from)."""

from __future__ import annotations

from typing import Any

import pytest

from services.sync.subscriptions.filters import Filters, filtered
from shared.providers.circleci.notify import NOTIFIER
from shared.providers.notify import Notice, Unrenderable
from tests.providers.mutations import survives
from tests.providers.notify_support import HOSTILE, assert_defused, assert_inert, links, plain
from tests.providers.samples import load


def sample(name: str) -> dict[str, Any]:
    return load("circleci", name)


def render(payload: dict[str, Any]) -> Notice:
    kind = payload.get("type")
    return NOTIFIER.notice(kind if isinstance(kind, str) else None, payload)


def workflow(status: str) -> dict[str, Any]:
    """CircleCI's documented workflow-completed with its status set: the failure and the
    recovery of one workflow on one branch."""
    payload = sample("workflow_completed")
    payload["workflow"]["status"] = status
    return payload


def test_a_workflow_failed_then_succeeded_is_a_thread_its_recovery_needs() -> None:
    failed = render(workflow("failed"))
    recovered = render(workflow("success"))
    assert failed.event == "workflow.failed" and recovered.event == "workflow.recovered"
    assert failed.item == recovered.item == "github/circleci/webhook-service@main:build-test-deploy"
    assert (failed.resolved, recovered.resolved) == (False, True)
    assert (failed.needs_root_by_default, recovered.needs_root_by_default) == (False, True)
    assert failed.default and recovered.default and failed.branch == "main"
    seen = plain(failed.text)
    assert "Workflow build-test-deploy failed on main (1dc6aa6)" in seen
    assert "in github/circleci/webhook-service, pipeline #130" in seen
    assert "Description of change — Author Name" in seen
    assert links(failed.text)[0][0].startswith("https://app.circleci.com/pipelines/github/")
    assert failed.card is not None and failed.card.color == "#cf222e"
    assert "Workflow build-test-deploy succeeded on main" in plain(recovered.text)
    fields = {f.name: f.value for f in failed.card.fields}
    assert fields == {
        "Project": "github/circleci/webhook-service",
        "Branch": "main",
        "Pipeline": "#130",
    }


@pytest.mark.parametrize(
    ("status", "event", "resolved", "default"),
    [
        ("error", "workflow.error", False, True),
        ("canceled", "workflow.canceled", None, False),
        ("unauthorized", "workflow.unauthorized", False, False),
    ],
)
def test_each_workflow_status(
    status: str, event: str, resolved: bool | None, default: bool
) -> None:
    notice = render(workflow(status))
    assert (notice.event, notice.resolved, notice.default) == (event, resolved, default)


def test_a_job_has_its_own_item_under_its_workflow() -> None:
    recovered = render(sample("job_completed"))
    assert recovered.event == "job.recovered" and recovered.needs_root_by_default
    assert not recovered.default
    item = "github/zulip-testing/circleci-webhook-test@main:sample:build-and-test"
    assert recovered.item == item
    failed_payload = sample("job_completed")
    failed_payload["job"]["status"] = "failed"
    failed = render(failed_payload)
    assert failed.event == "job.failed" and failed.item == item and failed.resolved is False
    assert "Job build-and-test (sample) failed on main" in plain(failed.text)


@pytest.mark.parametrize(
    ("name", "events", "shown"),
    [
        (
            "job_completed",
            ("job.*",),
            "Job build-and-test (sample) succeeded on main (a5e30a9) in "
            "github/zulip-testing/circleci-webhook-test, pipeline #4: "
            ".circleci: Update Webhook URL. — Hari Prashant Bhimaraju",
        ),
        (
            "github_workflow_completed",
            ("workflow.recovered",),
            "Workflow sample succeeded on main (a5e30a9) in "
            "github/zulip-testing/circleci-webhook-test, pipeline #4: "
            ".circleci: Update Webhook URL. — Hari Prashant Bhimaraju",
        ),
    ],
)
def test_a_success_is_posted_to_a_subscription_that_names_it(
    name: str, events: tuple[str, ...], shown: str
) -> None:
    """Zulip's captures of a GitHub-hosted project's job and workflow that succeeded, which
    Zulip shows ("Job `build-and-test` within Pipeline #4 has succeeded."): a subscription
    naming the event takes them with no failure before (sync posts it: `needs_root` is
    not set); one on the defaults takes a workflow's only as a failure's recovery."""
    notice = render(sample(name))
    assert plain(notice.text).strip() == shown
    assert filtered(Filters(events=events), notice) is None
    assert not notice.needs_root and notice.needs_root_by_default
    assert notice.card is not None and notice.card.color == "#1f883d"
    links_ = links(notice.text)
    assert links_[0][0].startswith("https://app.circleci.com/pipelines/github/zulip-testing/")


def test_a_ping_and_an_unknown_type() -> None:
    ping = {"type": "ping", "webhook": {"name": "Sample Webhook"}}
    assert "pinged Sample Webhook" in plain(render(ping).text)
    with pytest.raises(Unrenderable):
        render({"type": "deploy-completed"})


@pytest.mark.parametrize("hostile", HOSTILE)
def test_outside_text_stays_text(hostile: str) -> None:
    payload = workflow("failed")
    payload["workflow"]["name"] = hostile
    payload["workflow"]["url"] = "javascript:alert(1)"
    payload["project"]["slug"] = hostile
    vcs = payload["pipeline"]["vcs"]
    vcs["branch"] = hostile
    vcs["commit"]["subject"] = hostile
    vcs["commit"]["author"]["name"] = hostile
    notice = render(payload)
    assert_inert(notice.text, baseline=render(workflow("failed")).text)
    assert notice.card is not None and notice.card.url is None
    assert_defused(notice.card.title)


@pytest.mark.parametrize("name", ["workflow_completed", "job_completed"])
def test_broken_payloads_are_unrenderable_or_rendered_with_what_is_there(name: str) -> None:
    survives(render, sample(name))
    bad: Any = []
    with pytest.raises(Unrenderable):
        NOTIFIER.notice("workflow-completed", bad)
