"""Slack export imports end to end: upload → checks → job → envelopes on
`hookhub.chat.inbound`, the report, the events; and every bad input refused before a job."""

from __future__ import annotations

import zipfile
from pathlib import Path
from typing import Any

from pymongo import AsyncMongoClient

from services.sandbox.slack import TEAM_ID as FAKE_TEAM
from shared.domain.message_map import inbound_message_id
from tests.importer.conftest import Imports
from tests.slack_export import TEAM_ID, ExportBuilder, message, slack_file
from tests.spans import hex_ids, ids, recorded, traceparent_of
from tests.support import admin_headers, until


def _id(channel: str, ts: str, team: str = TEAM_ID) -> str:
    return inbound_message_id("slack", team, channel, ts)


def rich_export(tmp_path: Path, team: str = TEAM_ID) -> tuple[Path, dict[str, Any]]:
    """An export with every shape the importer must handle, in channel #general, and an
    unmapped channel #random."""
    b = ExportBuilder(team)
    b.add_user("U0ADA", "ada", display_name="Ada L.")
    b.add_user("U0BOB", "bob", real_name="Bob Marley")
    b.add_user("U0GRID", "grace", grid=True, real_name="Grace Hopper")
    general = b.add_channel("general", members=["U0ADA", "U0BOB"])
    random_ = b.add_channel("random")
    g = general["id"]
    day1, day2, day3 = "2024-03-01", "2024-03-02", "2024-03-03"
    root_ts, late_reply, early_reply = "1709337600.000100", "1709424000.000200", "1709337500.000300"
    b.add_message(general, day1, message("1709251200.000100", "hello <@U0BOB>", "U0ADA"))
    b.add_message(
        general, day1, message("1709251300.000100", "joined", "U0BOB", subtype="channel_join")
    )
    # A reply sitting in an earlier day file than its root (it happens with edited clocks
    # and re-exported archives), and one in a later day file.
    b.add_message(general, day1, message(early_reply, "early reply", "U0BOB", thread_ts=root_ts))
    b.add_message(
        general,
        day2,
        message(root_ts, "the root", "U0GRID", thread_ts=root_ts, reply_count=2,
                reactions=[{"name": "tada", "users": ["U0ADA"], "count": 3}]),
    )  # fmt: skip
    b.add_message(general, day2, ["not", "a", "record"])
    b.add_message(general, day2, message("1709337700.000100", "old text", "U0ADA",
                                         edited={"user": "U0ADA", "ts": "1709337800.000000"}))  # fmt: skip
    b.add_message(general, day2, message("1709337701.000100", "see file", "U0ADA",
                                         subtype="file_share", files=[slack_file("F1", "a.png")]))  # fmt: skip
    b.add_message(general, day2, message("1709337702.000100", "legacy", "U0BOB",
                                         subtype="file_share", file=slack_file("F0", "old.pdf")))  # fmt: skip
    b.add_message(general, day2, message("1709337703.000100", "", None, subtype="tombstone"))
    b.add_message(general, day3, message(late_reply, "late reply", "U0ADA", thread_ts=root_ts))
    b.add_message(general, day3, message("1709424001.000100", "bcast", "U0BOB",
                                         subtype="thread_broadcast", thread_ts=root_ts))  # fmt: skip
    b.add_message(general, day3, message("1709424002.000100", "deployed", None, subtype="bot_message",
                                         username="CI", icons={"image_72": "https://ci/x.png"},
                                         bot_id="B0CI"))  # fmt: skip
    b.add_message(
        general, day3, message("1709424003.000100", "waves", "U0ADA", subtype="me_message")
    )
    b.add_message(random_, day1, message("1709251200.000900", "elsewhere", "U0ADA"))
    facts = {
        "general": g,
        "random": random_["id"],
        "root": root_ts,
        "early": early_reply,
        "late": late_reply,
        "imported": 10,
    }
    return b.write(tmp_path / "rich.zip"), facts


async def test_an_export_is_imported_with_its_threads_files_authors_and_policy(
    imports: Imports, tmp_path: Path
) -> None:
    path, facts = rich_export(tmp_path)
    channel = imports.world.new_id("ch_")
    answer = await imports.upload(path, channel_map={"#general": channel})
    assert answer.status_code == 202, answer.text
    job = answer.json()
    assert job["status"] == "queued" and job["source"] == "export"
    assert job["upload"]["team_id"] == TEAM_ID and "file_id" not in job["upload"]

    done = await imports.until(job["id"], "completed", "failed")
    assert done["status"] == "completed", done
    got = {e["id"]: e for e in await imports.inbox.of_channel(channel, facts["imported"])}
    await imports.inbox.settle(0.5)
    got = {e["id"]: e for e in imports.inbox.envelopes if e["channel_id"] == channel}
    assert len(got) == facts["imported"]
    g = facts["general"]
    first = got[_id(g, "1709251200.000100")]
    assert first["imported"] is True and first["type"] == "message.received"
    assert first["text"] == "hello @Bob Marley"
    assert first["author"]["name"] == "Ada L."
    assert first["occurred_at"].startswith("2024-03-01T00:00:00")
    assert first["source"]["external_channel_id"] == g
    root_id = _id(g, facts["root"])
    assert got[root_id]["author"]["name"] == "Grace Hopper"  # from org_users.json
    assert got[root_id].get("thread_id") is None
    for reply in (facts["early"], facts["late"], "1709424001.000100"):
        assert got[_id(g, reply)]["thread_id"] == root_id
    assert got[_id(g, "1709337700.000100")]["text"] == "old text"  # the latest, as exported
    assert [a["url"] for a in got[_id(g, "1709337701.000100")]["attachments"]]
    assert got[_id(g, "1709337702.000100")]["attachments"][0]["name"] == "old.pdf"
    bot = got[_id(g, "1709424002.000100")]
    assert bot["author"]["name"] == "CI"
    assert _id(g, "1709337703.000100") not in got  # tombstone
    assert _id(g, "1709251300.000100") not in got  # channel_join

    report = done["report"]
    assert report["by_subtype"]["skipped:tombstone"] == 1
    assert report["by_subtype"]["skipped:channel_join"] == 1
    assert report["by_subtype"]["file_share"] == 2
    assert report["by_subtype"]["bot_message"] == 1
    assert report["by_subtype"]["me_message"] == 1
    assert report["reactions"] == 3
    assert report["quarantined_total"] == 1
    (bad,) = report["quarantined"]
    assert bad["file"].endswith("general/2024-03-02.json") and bad["position"] == 1
    assert [s["name"] for s in report["skipped_channels"]] == ["random"]
    progress = done["progress"]
    assert progress["percent"] == 100.0
    assert progress["messages_imported"] == facts["imported"]
    assert progress["channels_total"] == 1 and progress["channels_done"] == 1

    await imports.events.wait_for(
        lambda e: e["data"].get("job_id") == job["id"] and e["type"] == "import.completed"
    )
    kinds = [e["type"] for e in imports.events.values() if e["data"].get("job_id") == job["id"]]
    assert kinds[0] == "import.started" and kinds[-1] == "import.completed"
    assert "import.progress" in kinds

    # The same export again: the same envelope ids (the chat product drops them).
    again = await imports.upload(path, channel_map={"general": channel})
    assert again.status_code == 202, again.text
    assert (await imports.until(again.json()["id"], "completed", "failed"))["status"] == "completed"
    # Waited for, not given a second to arrive in.
    twice = [e["id"] for e in await imports.inbox.of_channel(channel, 2 * facts["imported"])]
    assert len(twice) == 2 * facts["imported"] and set(twice) == set(got)
    # A completed job's upload is deleted from GridFS (failed and cancelled ones are kept).
    settings = imports.world.sync_settings
    client: AsyncMongoClient[dict[str, Any]] = AsyncMongoClient(settings.mongo_uri)
    try:
        assert await client[settings.mongo_db]["import_uploads.files"].count_documents({}) == 0
    finally:
        await client.close()


async def test_a_dry_run_fills_the_report_and_publishes_nothing(
    imports: Imports, tmp_path: Path
) -> None:
    path, facts = rich_export(tmp_path)
    channel = imports.world.new_id("ch_")
    answer = await imports.upload(path, channel_map={facts["general"]: channel}, dry_run=True)
    assert answer.status_code == 202, answer.text
    done = await imports.until(answer.json()["id"], "completed", "failed")
    assert done["status"] == "completed" and done["dry_run"] is True
    assert done["progress"]["messages_imported"] == facts["imported"]
    assert done["report"]["quarantined_total"] == 1
    await imports.inbox.settle(1.5)
    assert not [e for e in imports.inbox.envelopes if e["channel_id"] == channel]


async def test_an_export_of_the_integrations_team_goes_by_its_mappings_into_the_map(
    imports: Imports, tmp_path: Path
) -> None:
    """The export's team is the Slack integration's: its mappings say where channels go,
    the imported messages enter the message map, and an edit made later in Slack reaches
    the chat as an edit of the imported message."""
    world = imports.world
    external, channel = await world.slack_pair()
    b = ExportBuilder(FAKE_TEAM)
    b.add_user("U0ADA", "ada")
    entry = b.add_channel(external.lower(), channel_id=external)
    ts = "1709251200.000100"
    b.add_message(entry, "2024-03-01", message(ts, "imported once", "U0ADA", team=FAKE_TEAM))
    answer = await imports.upload(b.write(tmp_path / "team.zip"))
    assert answer.status_code == 202, answer.text
    assert answer.json()["integration_id"] == world.slack_integration
    done = await imports.until(answer.json()["id"], "completed", "failed")
    assert done["status"] == "completed", done
    (received,) = await imports.inbox.of_channel(channel, 1)
    assert received["id"] == inbound_message_id("slack", FAKE_TEAM, external, ts)
    lookup = await world.sync.get(
        "/api/messages/lookup",
        params={"provider": "slack", "external_channel_id": external, "external_message_id": ts},
        headers=admin_headers(),
    )
    assert lookup.status_code == 200, lookup.text

    # The message exists in Slack too (it is history): a person edits it there.
    world.slack.add_history(external, [message(ts, "imported once", "U0ADA", team=FAKE_TEAM)])
    await world.slack.edit_as_user(external, ts, "edited later")
    edits = await world.chat.received(
        lambda v: v["channel_id"] == channel and v["type"] == "message.edited"
    )
    assert edits[0]["message_id"] == received["id"] and edits[0]["text"] == "edited later"


def _zip(path: Path, members: dict[str, bytes]) -> Path:
    with zipfile.ZipFile(path, "w") as archive:
        for name, data in members.items():
            archive.writestr(name, data)
    return path


async def test_bad_uploads_are_refused_before_any_job(imports: Imports, tmp_path: Path) -> None:
    before = await imports.count()
    not_zip = tmp_path / "notes.zip"
    not_zip.write_bytes(b"this is not a zip file at all")
    no_index = _zip(tmp_path / "no-index.zip", {"users.json": b"[]"})
    tricky = _zip(tmp_path / "tricky.zip", {"channels.json": b"[]", "../../etc/passwd": b"x"})
    bomb = ExportBuilder()
    bomb.add_channel("general")
    bomb.bomb("general/2024-01-01.json", 64 * 2**20)
    bombed = bomb.write(tmp_path / "bomb.zip")
    big = tmp_path / "big.zip"
    big.write_bytes(b"\0" * (9 * 2**20))  # over the tests' 8 MiB upload limit
    cases = [
        (not_zip, 400, "not_a_zip"),
        (no_index, 422, "no_channels_json"),
        (tricky, 422, "unsafe_member_name"),
        (bombed, 422, "zip_bomb"),
        (big, 413, None),
    ]
    for path, status, code in cases:
        answer = await imports.upload(path)
        assert answer.status_code == status, (path.name, answer.text)
        if code:
            assert answer.json()["error"]["code"] == code, answer.text
    good, _ = rich_export(tmp_path)
    form_cases = [
        ({"workspace_id": ""}, 422),
        # Not an id (shared.kernel.ids): once a job of a workspace named with a bidi override.
        ({"workspace_id": "ws\u202e\x00"}, 422),
        ({"workspace_id": "w" * 201}, 422),
        ({"channel_map": "{not json"}, 400),
        ({"channel_map": '["a"]'}, 422),
        ({"channel_map": '{"general": "ch\\u0000"}'}, 422),
        ({"dry_run": "maybe"}, 422),
    ]
    for fields, status in form_cases:
        data = {"workspace_id": imports.world.chat.workspace_id, **fields}
        with good.open("rb") as file:
            answer = await imports.api.post(
                "/api/imports",
                data=data,
                files={"file": ("x.zip", file, "application/zip")},
                headers=admin_headers(),
            )
        assert answer.status_code == status, (fields, answer.text)
        if fields.get("workspace_id"):
            assert answer.json()["error"]["message"].startswith("workspace_id "), answer.text
    answer = await imports.api.post(
        "/api/imports",
        content=b"{}",
        headers={**admin_headers(), "content-type": "application/json"},
    )
    assert answer.status_code == 400, answer.text
    unauthenticated = await imports.api.post("/api/imports", content=b"x")
    assert unauthenticated.status_code == 401
    assert await imports.count() == before


def _form(boundary: bytes, parts: list[tuple[bytes, bytes]], *, closed: bool = True) -> bytes:
    """A multipart body of `(headers, value)` parts, written by hand to be broken at will."""
    body = b"".join(b"--%s\r\n%s\r\n\r\n%s\r\n" % (boundary, h, v) for h, v in parts)
    return body + (b"--%s--\r\n" % boundary if closed else b"")


def _part(name: str, filename: str | None = None) -> bytes:
    header = b'Content-Disposition: form-data; name="%s"' % name.encode()
    return header + (b'; filename="%s"' % filename.encode() if filename else b"")


async def test_malformed_multipart_is_refused_with_invalid_upload_and_nothing_kept(
    imports: Imports, tmp_path: Path
) -> None:
    good, _ = rich_export(tmp_path)
    export = good.read_bytes()
    workspace = (_part("workspace_id"), imports.world.chat.workspace_id.encode())
    file = (_part("file", "export.zip"), export)
    padded = (_part("file", "e.zip") + b"".join(b"\r\nX-Pad-%d: 1" % i for i in range(50)), export)
    cases = {
        "garbage": (b"abc", b"this is not a multipart body \x00\x01" * 100),
        "another boundary": (b"abc", _form(b"xyz", [workspace, file])),
        "an oversized part header": (
            b"abc",
            _form(b"abc", [workspace, (_part("file", "x" * 10_000 + ".zip"), export)]),
        ),
        "too many headers in a part": (b"abc", _form(b"abc", [padded, workspace])),
        "too many parts": (
            b"abc",
            _form(b"abc", [workspace, *[(_part(f"f{i}"), b"v") for i in range(5_000)], file]),
        ),
        "no file part": (b"abc", _form(b"abc", [workspace])),
        "a body cut short": (b"abc", _form(b"abc", [workspace, file], closed=False)),
        "a boundary over 256 bytes": (b"b" * 300, _form(b"b" * 300, [workspace, file])),
    }
    before = await imports.count()
    settings = imports.world.sync_settings
    scratch = settings.data_dir / "imports"
    client: AsyncMongoClient[dict[str, Any]] = AsyncMongoClient(settings.mongo_uri)
    try:
        stored = client[settings.mongo_db]["import_uploads.chunks"]
        chunks = await stored.count_documents({})
        for case, (boundary, body) in cases.items():
            answer = await imports.api.post(
                "/api/imports",
                content=body,
                headers={
                    **admin_headers(),
                    "content-type": "multipart/form-data; boundary=" + boundary.decode(),
                },
            )
            assert answer.status_code == 400, (case, answer.text)
            error = answer.json()["error"]
            assert error["code"] == "invalid_upload", (case, error)
            assert error["message"], case
            assert await stored.count_documents({}) == chunks, case
            assert not list(scratch.glob("upload-*")), case
    finally:
        await client.close()
    assert await imports.count() == before


async def test_a_conversation_with_a_forged_id_is_skipped_and_the_rest_imported(
    imports: Imports, tmp_path: Path
) -> None:
    b = ExportBuilder()
    b.add_user("U0ADA", "ada")
    good = b.add_channel("general")
    forged = b.add_channel("evil", channel_id="C1.$where")
    b.add_message(good, "2024-03-01", message("1709251200.000100", "fine", "U0ADA"))
    b.add_message(forged, "2024-03-01", message("1709251200.000200", "forged", "U0ADA"))
    channel = imports.world.new_id("ch_")
    answer = await imports.upload(
        b.write(tmp_path / "forged.zip"), channel_map={"general": channel, "evil": channel}
    )
    assert answer.status_code == 202, answer.text
    done = await imports.until(answer.json()["id"], "completed", "failed")
    assert done["status"] == "completed", done
    (skipped,) = done["report"]["skipped_channels"]
    assert skipped["external_channel_id"] == "C1.$where"
    assert [e["text"] for e in await imports.inbox.of_channel(channel, 1)] == ["fine"]


async def test_an_import_jobs_messages_and_events_are_one_trace(
    imports: Imports, tmp_path: Path
) -> None:
    """Spans exported (recorded here): a job's run is a span of its own, the first of its
    trace, and what it publishes goes on in that trace, whatever the batches."""
    b = ExportBuilder(TEAM_ID)
    b.add_user("U0ADA", "ada")
    general = b.add_channel("general")
    for n in range(5):
        b.add_message(general, "2024-03-01", message(f"170925120{n}.000100", f"m{n}", "U0ADA"))
    path = b.write(tmp_path / "traced.zip")
    channel = imports.world.new_id("ch_")
    with recorded() as spans:
        answer = await imports.upload(path, channel_map={general["id"]: channel})
        assert answer.status_code == 202, answer.text
        job_id = answer.json()["id"]
        done = await imports.until(job_id, "completed", "failed")
        assert done["status"] == "completed", done
        [job] = await until(
            lambda: [
                s
                for s in spans.exporter.get_finished_spans()
                if (s.attributes or {}).get("hookhub.job_id") == job_id
            ],
            what="the job's span",
        )
    trace_id, _, parent_id = hex_ids(job)
    assert job.name == "import slack_export" and parent_id is None
    assert (job.attributes or {})["hookhub.workspace_id"] == imports.world.chat.workspace_id
    await imports.inbox.of_channel(channel, count=5)
    records = [r for r in imports.inbox.tap.records if f'"{channel}"'.encode() in r.value]
    events = await imports.events.wait_for(
        lambda v: (
            v["type"] in ("import.started", "import.completed")
            and v["data"].get("job_id") == job_id
        ),
        count=2,
    )
    assert len(events) == 2, events
    records += [
        r for r in imports.events.records if job_id.encode() in r.value and b'"import.' in r.value
    ]
    traced = {ids(traceparent_of(r) or "0-none-0-0")[0] for r in records}
    assert len(records) >= 7 and traced == {trace_id}
