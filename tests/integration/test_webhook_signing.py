"""Webhook events and their signatures, as a host platform receives them: a real local HTTP
receiver verifies every request with the `standardwebhooks` package (what a receiver in any
language does with its own Standard Webhooks library) and validates the body against the
event's published JSON Schema."""

from __future__ import annotations

import json
from collections.abc import Iterator
from datetime import UTC, datetime

import httpx
import jsonschema
import pytest
from standardwebhooks.webhooks import Webhook, WebhookVerificationError
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse
from starlette.routing import Route

from mls_sync.domain import events
from mls_sync.domain.results import SyncResult
from mls_sync.domain.status import ListingStatus as S
from mls_sync.sandbox.server import BackgroundServer
from mls_sync.webhooks.signing import new_message_id, new_secret, signed_headers

AT = datetime(2026, 12, 4, 12, 0, tzinfo=UTC)
EXAMPLES: list[events.WireModel] = [
    events.ListingStatusChanged(
        listing_id="L1",
        mls_number="MLS-1",
        old_status=S.ACTIVE,
        new_status=S.SOLD,
        connection_id="C1",
        run_id="R1",
    ),
    events.ListingRestored(listing_id="L1", mls_number="MLS-1", connection_id="C1"),
    events.PostUnpublished(
        post_id="P1", listing_id="L1", platform="facebook", platform_post_id="111_222"
    ),
    events.PostUnpublishFailed(
        post_id="P1",
        listing_id="L1",
        platform="x",
        reason="X connection expired: reconnect it",
        action_required=True,
    ),
    events.ConnectionReauthRequired(
        connection_id="C1", kind="mls", message="MLS connection expired. Please re-authenticate."
    ),
    events.SyncRunFinished(
        run_id="R1",
        trigger="cron",
        success=True,
        message="1 updated",
        data=SyncResult(total_listings=3, updated_listings=1),
    ),
    events.AlertFired(alert="MlsSyncCredentialSuspended", severity="critical", summary="..."),
]


class Receiver:
    """The host platform's endpoint: verifies, then keeps what it accepted."""

    def __init__(self, secret: str) -> None:
        self.webhook = Webhook(secret)
        self.accepted: list[tuple[str, dict[str, object]]] = []
        self.app = Starlette(routes=[Route("/hooks", self.receive, methods=["POST"])])

    async def receive(self, request: Request) -> JSONResponse:
        body = await request.body()
        try:
            payload = self.webhook.verify(body, dict(request.headers))
        except WebhookVerificationError as exc:
            return JSONResponse({"error": str(exc)}, status_code=400)
        self.accepted.append((request.headers["webhook-id"], payload))
        return JSONResponse({"ok": True})


@pytest.fixture
def secret() -> str:
    return new_secret()


@pytest.fixture
def receiver(secret: str) -> Receiver:
    return Receiver(secret)


@pytest.fixture
def hooks_url(receiver: Receiver) -> Iterator[str]:
    with BackgroundServer(receiver.app) as server:
        yield f"{server.url}/hooks"


def deliver(url: str, message_id: str, body: bytes, secrets: list[str]) -> httpx.Response:
    now = datetime.now(UTC)  # receivers refuse a timestamp more than 5 minutes off
    return httpx.post(url, content=body, headers=signed_headers(message_id, now, body, secrets))


@pytest.mark.parametrize("example", EXAMPLES, ids=lambda e: type(e).__name__)
def test_every_event_is_signed_verifiable_and_matches_its_published_schema(
    example: events.WireModel, secret: str, receiver: Receiver, hooks_url: str
) -> None:
    payload = events.envelope(example, at=AT)
    body = json.dumps(payload).encode()
    message_id = new_message_id()

    answer = deliver(hooks_url, message_id, body, [secret])

    assert answer.status_code == 200, answer.text
    assert receiver.accepted == [(message_id, payload)]
    jsonschema.validate(payload, events.event_schemas()[payload["type"]])
    assert payload["version"] == events.SCHEMA_VERSION
    assert payload["timestamp"] == "2026-12-04T12:00:00.000Z"


def test_the_payload_is_camel_case_like_the_rest_of_the_api() -> None:
    payload = events.envelope(EXAMPLES[0], at=AT)
    assert payload["type"] == "listing.status_changed"
    assert payload["data"] == {
        "listingId": "L1",
        "mlsNumber": "MLS-1",
        "oldStatus": "active",
        "newStatus": "sold",
        "connectionId": "C1",
        "runId": "R1",
    }


def test_a_tampered_body_or_another_secret_is_refused_by_the_receiver(
    secret: str, receiver: Receiver, hooks_url: str
) -> None:
    body = json.dumps(events.envelope(EXAMPLES[0], at=AT)).encode()
    now = datetime.now(UTC)
    headers = signed_headers(new_message_id(), now, body, [secret])

    tampered = httpx.post(hooks_url, content=body.replace(b"sold", b"active"), headers=headers)
    forged = deliver(hooks_url, new_message_id(), body, [new_secret()])

    assert (tampered.status_code, forged.status_code) == (400, 400)
    assert receiver.accepted == []


def test_during_a_rotation_both_secrets_sign_so_a_receiver_on_either_accepts(
    secret: str, hooks_url: str, receiver: Receiver
) -> None:
    newer = new_secret()
    body = json.dumps(events.envelope(EXAMPLES[2], at=AT)).encode()
    headers = signed_headers(new_message_id(), datetime.now(UTC), body, [newer, secret])

    assert len(headers["webhook-signature"].split(" ")) == 2
    assert httpx.post(hooks_url, content=body, headers=headers).status_code == 200  # old key
    Webhook(newer).verify(body, headers)  # and a receiver already on the new one


def test_a_message_id_is_stable_across_retries_so_receivers_can_dedupe(
    secret: str, hooks_url: str, receiver: Receiver
) -> None:
    body = json.dumps(events.envelope(EXAMPLES[1], at=AT)).encode()
    message_id = new_message_id()
    for _ in range(2):  # an answer lost, the same event delivered again
        assert deliver(hooks_url, message_id, body, [secret]).status_code == 200
    assert [mid for mid, _ in receiver.accepted] == [message_id, message_id]
    assert message_id.startswith("msg_")


def test_an_unknown_event_type_is_refused_by_name() -> None:
    assert events.check_event_types(["post.unpublished", "post.unpublished"]) == [
        "post.unpublished"
    ]
    with pytest.raises(events.UnknownEventType, match=r"post\.deleted"):
        events.check_event_types(["post.deleted"])


def test_signing_without_a_secret_is_an_error() -> None:
    with pytest.raises(ValueError, match="at least one secret"):
        signed_headers(new_message_id(), AT, b"{}", [])
