"""API shapes of `/api/integrations/{id}/actions` (SPEC §10)."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Literal

from pydantic import (
    AnyHttpUrl,
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    StringConstraints,
    model_validator,
)
from pydantic_core import PydanticCustomError

from shared.kernel.ids import PrintableId
from shared.providers.issues import QuotedMessage

# Whitespace around an id is dropped (a copy-paste's), then the id is one by hookhub's rule.
Id = Annotated[PrintableId, BeforeValidator(lambda v: v.strip() if isinstance(v, str) else v)]


class ChatMessage(BaseModel):
    """The chat message the issue is made from; quoted in the issue."""

    model_config = ConfigDict(extra="forbid")

    channel_id: Id
    message_id: Id
    # The root of the message's thread, when the message is itself a reply: the reply
    # (`reply: true`) goes into that thread. Default: the thread of `message_id`.
    thread_id: Id | None = None
    text: str = Field(max_length=40_000)
    author: Annotated[str, StringConstraints(strip_whitespace=True, min_length=1, max_length=200)]
    time: datetime | None = None
    permalink: Annotated[AnyHttpUrl, Field()] | None = None

    def quoted(self) -> QuotedMessage:
        return QuotedMessage(
            author=self.author,
            text=self.text,
            time=self.time,
            permalink=str(self.permalink) if self.permalink else None,
        )


class IssueBody(BaseModel):
    """What every provider's `create-issue` body has."""

    model_config = ConfigDict(extra="forbid")

    message: ChatMessage | None = None
    # Post a `message.received` with the issue's link into the message's thread.
    reply: bool = False

    @model_validator(mode="after")
    def _reply_needs_message(self) -> IssueBody:
        if self.reply and self.message is None:
            # A custom error: its message is the user's reading, with no "Value error, ".
            raise PydanticCustomError(
                "reply_needs_message", "reply: true needs the message to reply to"
            )
        return self


class GitHubIssueCreate(IssueBody):
    """For a GitHub integration."""

    repo: str = Field(
        max_length=200,
        pattern=r"^[A-Za-z0-9](?:[A-Za-z0-9-]*)/[A-Za-z0-9._-]+$",
        description="owner/name",
        examples=["octocat/hello-world"],
    )
    # GitHub's limits: a title of 256 characters, a body of 65,536 (with the quote).
    title: Annotated[str, StringConstraints(strip_whitespace=True, min_length=1, max_length=256)]
    body: str | None = Field(None, max_length=60_000)
    labels: list[
        Annotated[str, StringConstraints(strip_whitespace=True, min_length=1, max_length=50)]
    ] = Field(default_factory=list, max_length=100)


class JiraIssueCreate(IssueBody):
    """For a Jira integration."""

    project_key: str = Field(max_length=100, pattern=r"^[A-Za-z][A-Za-z0-9_]*$", examples=["PROJ"])
    issue_type: Annotated[
        str, StringConstraints(strip_whitespace=True, min_length=1, max_length=255)
    ] = "Task"
    # Jira refuses a summary over 255 characters or with a line break.
    summary: Annotated[
        str,
        StringConstraints(
            strip_whitespace=True, min_length=1, max_length=255, pattern=r"^[^\r\n]*$"
        ),
    ]
    description: str | None = Field(None, max_length=30_000)


IssueCreate = GitHubIssueCreate | JiraIssueCreate


class IssueCreated(BaseModel):
    provider: Literal["github", "jira"]
    key_or_number: str = Field(
        description='GitHub: the issue number (`"42"`); Jira: the issue key (`PROJ-1`)'
    )
    url: str = Field(description="where people see the issue")
