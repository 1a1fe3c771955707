"""The platform sandbox behaves as the platforms do in 2026-12: retired API versions, the read
routes the clients probe with, Instagram deletes through Facebook Login, Graph's permission and
session errors, and tokens that expire on schedule. Plain httpx over real HTTP."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from typing import Any
from urllib.parse import quote

import httpx
import pytest

from mls_sync.sandbox.platforms import PlatformSandbox, TokenState, default_retired_versions

TOKEN = "page-token-0123456789"
IG_TOKEN = "ig-user-token-0123456789"
POST_ID = "102030405060708_987654321"
MEDIA_ID = "17895695668004550"
URN = "urn:li:share:7180000000000000001"
LATEST_GRAPH = "v25.0"
RETIRED_GRAPH = "v20.0"
REFRESH = "refresh-token-0123456789"


class FakeClock:
    def __init__(self) -> None:
        self.now = datetime(2026, 12, 1, 12, 0, tzinfo=UTC)

    def __call__(self) -> datetime:
        return self.now

    def advance(self, **delta: float) -> None:
        self.now += timedelta(**delta)


@pytest.fixture
def http(platforms_url: str) -> Iterator[httpx.Client]:
    with httpx.Client(base_url=platforms_url, timeout=5.0) as client:
        yield client


@pytest.fixture
def clock(platforms: PlatformSandbox) -> FakeClock:
    fake = FakeClock()
    platforms.clock = fake
    return fake


def bearer(token: str | None) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"} if token else {}


def linkedin(http: httpx.Client, method: str, version: str, token: str | None) -> httpx.Response:
    headers = {**bearer(token), "LinkedIn-Version": version, "X-Restli-Protocol-Version": "2.0.0"}
    return http.request(method, f"/rest/posts/{quote(URN, safe='')}", headers=headers)


def graph_error(response: httpx.Response) -> dict[str, Any]:
    error = response.json()["error"]
    assert error["type"] in ("OAuthException", "GraphMethodException")
    assert error["fbtrace_id"]
    return error


def facebook_published(platforms: PlatformSandbox) -> None:
    platforms.add_token("facebook", TOKEN)
    platforms.add_post("facebook", POST_ID)


def instagram_published(platforms: PlatformSandbox) -> None:
    platforms.add_token("facebook", TOKEN)  # the Page's token (Facebook Login)
    platforms.add_token("instagram", IG_TOKEN)  # an Instagram user token (Instagram Login)
    platforms.add_post("instagram", MEDIA_ID)


# Every Graph request a token can make: (platform whose token it takes, method, path).
def graph_calls(version: str) -> list[tuple[str, str, str]]:
    return [
        ("facebook", "DELETE", f"/{version}/{POST_ID}"),
        ("facebook", "GET", f"/{version}/{POST_ID}?fields=id"),
        ("facebook", "GET", f"/{version}/me?fields=id"),
        ("instagram", "DELETE", f"/instagram/{version}/{MEDIA_ID}"),
        ("instagram", "GET", f"/instagram/{version}/{MEDIA_ID}?fields=id"),
        ("instagram", "GET", f"/instagram/{version}/me?fields=id"),
    ]


def both_published(platforms: PlatformSandbox) -> dict[str, str]:
    facebook_published(platforms)
    instagram_published(platforms)
    return {"facebook": TOKEN, "instagram": IG_TOKEN}


# -- retired API versions --------------------------------------------------------------------


def test_by_default_linkedin_has_retired_every_version_from_202206_through_202511() -> None:
    retired = default_retired_versions()["linkedin"]

    assert "202411" in retired
    assert {"202206", "202301", "202412", "202511"} <= retired
    assert len(retired) == 42  # June 2022 to November 2025, month by month
    assert not {"202205", "202512", "202601", "202609"} & retired


def test_by_default_graph_has_retired_every_version_through_v20_but_serves_v21_and_later() -> None:
    defaults = default_retired_versions()

    for platform in ("facebook", "instagram"):
        assert {"v2.0", "v2.12", "v3.3", "v16.0", "v19.0", "v20.0"} <= defaults[platform]
        assert not {"v21.0", "v22.0", LATEST_GRAPH} & defaults[platform]


def test_each_sandbox_has_its_own_retired_versions() -> None:
    one, other = PlatformSandbox(), PlatformSandbox()

    one.retire_version("linkedin", "202609")

    assert one.version_retired("linkedin", "202609")
    assert not other.version_retired("linkedin", "202609")
    assert "202609" not in default_retired_versions()["linkedin"]


def test_linkedin_answers_a_retired_version_with_426_and_keeps_the_post(
    platforms: PlatformSandbox, http: httpx.Client
) -> None:
    platforms.add_token("linkedin", TOKEN)
    platforms.add_post("linkedin", URN)

    response = linkedin(http, "DELETE", "202411", TOKEN)

    assert response.status_code == 426
    assert response.json() == {
        "status": 426,
        "code": "NONEXISTENT_VERSION",
        "message": "Requested version 202411 is not active",
    }
    assert platforms.has_post("linkedin", URN)
    assert platforms.deletes == []


def test_linkedin_judges_the_version_before_the_token(http: httpx.Client) -> None:
    for method in ("DELETE", "GET"):
        response = linkedin(http, method, "202511", None)

        assert response.status_code == 426
        assert response.json()["message"] == "Requested version 202511 is not active"


def test_linkedin_retires_a_patch_version_with_its_month(http: httpx.Client) -> None:
    response = linkedin(http, "GET", "202411.01", None)

    assert response.status_code == 426
    assert response.json()["message"] == "Requested version 202411.01 is not active"


def test_linkedin_still_serves_202512_and_the_clients_new_default_202609(
    platforms: PlatformSandbox, http: httpx.Client
) -> None:
    platforms.add_token("linkedin", TOKEN)
    platforms.add_post("linkedin", URN)

    assert linkedin(http, "GET", "202512", TOKEN).status_code == 200
    assert linkedin(http, "DELETE", "202609", TOKEN).status_code == 204
    assert platforms.deletes == [("linkedin", URN)]


def test_linkedin_without_a_version_header_still_answers_400(http: httpx.Client) -> None:
    response = http.delete(f"/rest/posts/{quote(URN, safe='')}", headers=bearer(TOKEN))

    assert response.status_code == 400
    assert response.json()["code"] == "VERSION_MISSING"


def test_retire_version_makes_an_active_linkedin_version_answer_426(
    platforms: PlatformSandbox, http: httpx.Client
) -> None:
    platforms.add_token("linkedin", TOKEN)
    assert linkedin(http, "GET", "202609", TOKEN).status_code == 404

    platforms.retire_version("linkedin", "202609")

    assert linkedin(http, "GET", "202609", TOKEN).status_code == 426


@pytest.mark.parametrize(("platform", "method", "path"), graph_calls(RETIRED_GRAPH))
def test_graph_answers_a_retired_version_with_code_2635_before_the_token(
    platforms: PlatformSandbox, http: httpx.Client, platform: str, method: str, path: str
) -> None:
    both_published(platforms)

    for token in (None, "not-a-token", TOKEN if platform == "facebook" else IG_TOKEN):
        response = http.request(method, path, headers=bearer(token))

        assert response.status_code == 400
        error = graph_error(response)
        assert (error["code"], error["type"]) == (2635, "OAuthException")
        assert error["message"] == (
            "(#2635) You are calling a deprecated version of the Graph API. Please update to "
            "the latest version: v25.0."
        )
    assert platforms.has_post(platform, POST_ID if platform == "facebook" else MEDIA_ID)


def test_facebooks_token_exchange_refuses_a_retired_version_before_the_app_and_the_token(
    platforms: PlatformSandbox, http: httpx.Client
) -> None:
    response = http.get(
        f"/{RETIRED_GRAPH}/oauth/access_token",
        params={"grant_type": "fb_exchange_token", "fb_exchange_token": "unknown"},
    )

    assert response.status_code == 400
    assert graph_error(response)["code"] == 2635
    assert platforms.grants == []


def test_graph_still_serves_v21_until_its_end_of_life(
    platforms: PlatformSandbox, http: httpx.Client
) -> None:
    facebook_published(platforms)

    response = http.delete(f"/v21.0/{POST_ID}", headers=bearer(TOKEN))

    assert response.json() == {"success": True}


def test_retire_version_makes_an_active_graph_version_answer_2635(
    platforms: PlatformSandbox, http: httpx.Client
) -> None:
    platforms.add_token("instagram", IG_TOKEN)
    platforms.retire_version("instagram", "v21.0")

    retired = http.get("/instagram/v21.0/me", headers=bearer(IG_TOKEN))
    facebook = http.get("/v21.0/me", headers=bearer(TOKEN))

    assert graph_error(retired)["code"] == 2635
    assert graph_error(facebook)["code"] == 190  # Facebook's list is its own: v21.0 still served


# -- read routes -----------------------------------------------------------------------------


def test_linkedin_reads_a_known_post_back_by_its_urn(
    platforms: PlatformSandbox, http: httpx.Client
) -> None:
    platforms.add_token("linkedin", TOKEN)
    platforms.add_post("linkedin", URN)

    response = linkedin(http, "GET", "202609", TOKEN)

    assert response.status_code == 200
    assert response.json() == {"id": URN}
    assert platforms.has_post("linkedin", URN)


def test_linkedin_read_without_a_valid_token_answers_the_invalid_token_401(
    http: httpx.Client,
) -> None:
    for token in (None, "not-a-token"):
        response = linkedin(http, "GET", "202609", token)

        assert response.status_code == 401
        assert response.json()["serviceErrorCode"] == 65600
        assert response.json()["code"] == "INVALID_ACCESS_TOKEN"


def test_linkedin_read_of_an_unknown_or_deleted_post_answers_404(
    platforms: PlatformSandbox, http: httpx.Client
) -> None:
    platforms.add_token("linkedin", TOKEN)
    assert linkedin(http, "GET", "202609", TOKEN).status_code == 404

    platforms.add_post("linkedin", URN)
    linkedin(http, "DELETE", "202609", TOKEN)

    assert linkedin(http, "GET", "202609", TOKEN).status_code == 404


@pytest.mark.parametrize(("platform", "path"), [("facebook", ""), ("instagram", "/instagram")])
def test_graph_me_answers_the_page_of_a_valid_token(
    platforms: PlatformSandbox, http: httpx.Client, platform: str, path: str
) -> None:
    platforms.add_token(platform, TOKEN)

    response = http.get(f"{path}/{LATEST_GRAPH}/me", params={"fields": "id"}, headers=bearer(TOKEN))

    assert response.status_code == 200
    body = response.json()
    assert body["name"] == "Sandbox Page"
    assert body["id"].isdigit()


@pytest.mark.parametrize("path", ["", "/instagram"])
def test_graph_me_without_any_token_answers_code_2500(http: httpx.Client, path: str) -> None:
    response = http.get(f"{path}/{LATEST_GRAPH}/me", params={"fields": "id"})

    assert response.status_code == 400
    error = graph_error(response)
    assert (error["code"], error["type"]) == (2500, "OAuthException")
    assert error["message"] == (
        "An active access token must be used to query information about the current user."
    )


@pytest.mark.parametrize(("platform", "path"), [("facebook", ""), ("instagram", "/instagram")])
def test_graph_me_answers_expired_and_unknown_tokens_as_the_deletes_do(
    platforms: PlatformSandbox, http: httpx.Client, platform: str, path: str
) -> None:
    platforms.add_token(platform, TOKEN)
    platforms.expire_token(platform, TOKEN)

    expired = graph_error(http.get(f"{path}/{LATEST_GRAPH}/me", headers=bearer(TOKEN)))
    unknown = graph_error(http.get(f"{path}/{LATEST_GRAPH}/me", headers=bearer("nope")))

    assert (expired["code"], expired["error_subcode"]) == (190, 463)
    assert unknown["code"] == 190
    assert "error_subcode" not in unknown


def test_instagram_me_is_not_taken_for_a_media_id(
    platforms: PlatformSandbox, http: httpx.Client
) -> None:
    platforms.add_token("instagram", IG_TOKEN)

    response = http.get(f"/instagram/{LATEST_GRAPH}/me", headers=bearer(IG_TOKEN))

    assert response.status_code == 200
    assert response.json()["name"] == "Sandbox Page"


def test_the_facebook_host_reads_back_a_page_post_and_an_instagram_media(
    platforms: PlatformSandbox, http: httpx.Client
) -> None:
    both_published(platforms)

    for object_id in (POST_ID, MEDIA_ID):
        response = http.get(
            f"/{LATEST_GRAPH}/{object_id}", params={"fields": "id"}, headers=bearer(TOKEN)
        )

        assert response.status_code == 200
        assert response.json() == {"id": object_id}


def test_the_facebook_host_cannot_load_an_unknown_id(
    platforms: PlatformSandbox, http: httpx.Client
) -> None:
    platforms.add_token("facebook", TOKEN)

    response = http.get(
        f"/{LATEST_GRAPH}/{POST_ID}", params={"fields": "id"}, headers=bearer(TOKEN)
    )

    assert response.status_code == 400
    error = graph_error(response)
    assert (error["code"], error["error_subcode"]) == (100, 33)
    assert error["message"].startswith(f"Unsupported get request. Object with ID '{POST_ID}'")


def test_the_facebook_host_reads_nothing_for_an_invalid_token(
    platforms: PlatformSandbox, http: httpx.Client
) -> None:
    facebook_published(platforms)

    response = http.get(f"/{LATEST_GRAPH}/{POST_ID}", headers=bearer(IG_TOKEN))

    assert graph_error(response)["code"] == 190


# -- Instagram through Facebook Login ---------------------------------------------------------


def test_a_page_token_deletes_instagram_media_on_the_facebook_host(
    platforms: PlatformSandbox, http: httpx.Client
) -> None:
    instagram_published(platforms)

    response = http.delete(f"/{LATEST_GRAPH}/{MEDIA_ID}", headers=bearer(TOKEN))

    assert response.status_code == 200
    assert response.json() == {"success": True}
    assert platforms.deletes == [("instagram", MEDIA_ID)]
    assert not platforms.has_post("instagram", MEDIA_ID)
    again = http.delete(f"/{LATEST_GRAPH}/{MEDIA_ID}", headers=bearer(TOKEN))
    assert graph_error(again)["code"] == 100


def test_an_instagram_user_token_deletes_nothing_on_the_facebook_host(
    platforms: PlatformSandbox, http: httpx.Client
) -> None:
    instagram_published(platforms)

    response = http.delete(f"/{LATEST_GRAPH}/{MEDIA_ID}", headers=bearer(IG_TOKEN))

    assert graph_error(response)["code"] == 190
    assert platforms.has_post("instagram", MEDIA_ID)


def test_the_instagram_login_host_still_refuses_deletes(
    platforms: PlatformSandbox, http: httpx.Client
) -> None:
    instagram_published(platforms)

    response = http.delete(f"/instagram/{LATEST_GRAPH}/{MEDIA_ID}", headers=bearer(IG_TOKEN))

    error = graph_error(response)
    assert (error["code"], error["error_subcode"]) == (100, 33)
    assert platforms.has_post("instagram", MEDIA_ID)
    assert platforms.deletes == []


# -- a delete refused while the post stays readable (code 100) -------------------------------


@pytest.mark.parametrize(
    ("platform", "object_id"), [("facebook", POST_ID), ("instagram", MEDIA_ID)]
)
def test_a_denied_delete_answers_code_100_while_the_post_stays_readable(
    platforms: PlatformSandbox, http: httpx.Client, platform: str, object_id: str
) -> None:
    both_published(platforms)
    platforms.deny_delete(platform, object_id)

    delete = http.delete(f"/{LATEST_GRAPH}/{object_id}", headers=bearer(TOKEN))
    read = http.get(f"/{LATEST_GRAPH}/{object_id}", params={"fields": "id"}, headers=bearer(TOKEN))

    error = graph_error(delete)
    assert (delete.status_code, error["code"], error["error_subcode"]) == (400, 100, 33)
    assert error["message"].startswith(f"Unsupported delete request. Object with ID '{object_id}'")
    assert read.json() == {"id": object_id}
    assert platforms.has_post(platform, object_id)


def test_a_denied_delete_leaves_other_posts_deletable(
    platforms: PlatformSandbox, http: httpx.Client
) -> None:
    facebook_published(platforms)
    platforms.add_post("facebook", "102030405060708_1")
    platforms.deny_delete("facebook", POST_ID)

    response = http.delete(f"/{LATEST_GRAPH}/102030405060708_1", headers=bearer(TOKEN))

    assert response.json() == {"success": True}


def test_only_graph_platforms_deny_deletes() -> None:
    with pytest.raises(ValueError, match="Graph"):
        PlatformSandbox().deny_delete("linkedin", URN)


# -- permission and session errors per token ---------------------------------------------------


@pytest.mark.parametrize(
    ("code", "status", "message"),
    [
        (10, 400, "(#10) Application does not have permission for this action"),
        (200, 403, "(#200) Permissions error"),
    ],
)
def test_a_lapsed_permission_answers_every_graph_endpoint_for_that_token(
    platforms: PlatformSandbox, http: httpx.Client, code: int, status: int, message: str
) -> None:
    tokens = both_published(platforms)
    for platform, token in tokens.items():
        platforms.lapse_permission(platform, token, code)

    for platform, method, path in graph_calls(LATEST_GRAPH):
        response = http.request(method, path, headers=bearer(tokens[platform]))

        assert response.status_code == status, path
        error = graph_error(response)
        assert (error["code"], error["message"], error["type"]) == (code, message, "OAuthException")
    assert platforms.deletes == []


@pytest.mark.parametrize(
    ("subcode", "words"),
    [
        (458, "The user has not authorized application"),
        (460, "the user changed their password"),
        (463, "Session has expired on"),
        (467, "the user logged out"),
    ],
)
def test_an_invalidated_session_answers_every_graph_endpoint_with_190_and_its_subcode(
    platforms: PlatformSandbox, http: httpx.Client, subcode: int, words: str
) -> None:
    tokens = both_published(platforms)
    for platform, token in tokens.items():
        platforms.invalidate_session(platform, token, subcode)

    for platform, method, path in graph_calls(LATEST_GRAPH):
        response = http.request(method, path, headers=bearer(tokens[platform]))

        assert response.status_code == 400, path
        error = graph_error(response)
        assert (error["code"], error["error_subcode"], error["type"]) == (
            190,
            subcode,
            "OAuthException",
        )
        assert error["message"].startswith("Error validating access token: ")
        assert words in error["message"]
    assert platforms.deletes == []


def test_an_invalidated_session_cannot_be_exchanged_for_a_long_lived_token(
    platforms: PlatformSandbox, http: httpx.Client
) -> None:
    platforms.add_token("facebook", TOKEN)
    platforms.invalidate_session("facebook", TOKEN, 460)

    response = http.get(
        f"/{LATEST_GRAPH}/oauth/access_token",
        params={
            "grant_type": "fb_exchange_token",
            "client_id": PlatformSandbox.CLIENT_ID,
            "client_secret": PlatformSandbox.CLIENT_SECRET,
            "fb_exchange_token": TOKEN,
        },
    )

    error = graph_error(response)
    assert (error["code"], error["error_subcode"]) == (190, 460)
    assert platforms.grants == []


def test_a_refused_token_leaves_the_other_tokens_working(
    platforms: PlatformSandbox, http: httpx.Client
) -> None:
    facebook_published(platforms)
    platforms.add_token("facebook", "another-page-token")
    platforms.lapse_permission("facebook", "another-page-token", 200)

    response = http.delete(f"/{LATEST_GRAPH}/{POST_ID}", headers=bearer(TOKEN))

    assert response.json() == {"success": True}


def test_a_refused_token_is_not_throttled_and_does_not_use_up_the_throttle(
    platforms: PlatformSandbox, http: httpx.Client
) -> None:
    facebook_published(platforms)
    platforms.add_token("facebook", "lapsed")
    platforms.lapse_permission("facebook", "lapsed", 10)
    platforms.throttle["facebook"] = 1

    refused = http.get(f"/{LATEST_GRAPH}/me", headers=bearer("lapsed"))
    throttled = http.delete(f"/{LATEST_GRAPH}/{POST_ID}", headers=bearer(TOKEN))

    assert graph_error(refused)["code"] == 10
    assert graph_error(throttled)["code"] == 32


def test_only_graph_codes_and_platforms_are_accepted_for_refusals() -> None:
    sandbox = PlatformSandbox()

    with pytest.raises(ValueError):
        sandbox.lapse_permission("facebook", TOKEN, 190)
    with pytest.raises(ValueError):
        sandbox.invalidate_session("facebook", TOKEN, 999)
    with pytest.raises(ValueError):
        sandbox.lapse_permission("x", TOKEN, 10)


# -- tokens that expire on schedule -------------------------------------------------------------


def test_a_token_expires_at_its_expires_at_by_the_sandbox_clock(
    platforms: PlatformSandbox, http: httpx.Client, clock: FakeClock
) -> None:
    facebook_published(platforms)
    platforms.add_token("facebook", TOKEN, expires_at=clock.now + timedelta(hours=1))
    assert platforms.check("facebook", TOKEN).token is TokenState.VALID

    clock.advance(hours=1)

    assert platforms.check("facebook", TOKEN).token is TokenState.EXPIRED
    error = graph_error(http.delete(f"/{LATEST_GRAPH}/{POST_ID}", headers=bearer(TOKEN)))
    assert (error["code"], error["error_subcode"]) == (190, 463)
    assert "The current time is Tuesday, 01-Dec-26 13:00:00 UTC." in error["message"]
    assert platforms.has_post("facebook", POST_ID)


def test_a_token_past_its_expiry_cannot_be_renewed(
    platforms: PlatformSandbox, http: httpx.Client, clock: FakeClock
) -> None:
    platforms.add_token("instagram", IG_TOKEN, expires_at=clock.now - timedelta(seconds=1))

    response = http.get(
        "/instagram/refresh_access_token",
        params={"grant_type": "ig_refresh_token", "access_token": IG_TOKEN},
    )

    assert platforms.renew("instagram", IG_TOKEN) is TokenState.EXPIRED
    assert graph_error(response)["error_subcode"] == 463
    assert platforms.grants == []


def test_a_linkedin_token_past_its_expiry_answers_the_expired_401(
    platforms: PlatformSandbox, http: httpx.Client, clock: FakeClock
) -> None:
    platforms.add_token("linkedin", TOKEN, expires_at=clock.now)

    response = linkedin(http, "GET", "202609", TOKEN)

    assert response.status_code == 401
    assert response.json()["code"] == "EXPIRED_ACCESS_TOKEN"


def test_adding_a_token_again_without_expires_at_makes_it_last(
    platforms: PlatformSandbox, clock: FakeClock
) -> None:
    platforms.add_token("x", TOKEN, expires_at=clock.now)
    platforms.add_token("x", TOKEN)

    clock.advance(days=365)

    assert platforms.check("x", TOKEN).token is TokenState.VALID


def test_expire_token_still_expires_a_token_at_once(
    platforms: PlatformSandbox, clock: FakeClock
) -> None:
    platforms.add_token("pinterest", TOKEN, expires_at=clock.now + timedelta(days=30))

    platforms.expire_token("pinterest", TOKEN)

    assert platforms.check("pinterest", TOKEN).token is TokenState.EXPIRED


def _refresh(http: httpx.Client, platform: str) -> httpx.Response:
    client = {
        "client_id": PlatformSandbox.CLIENT_ID,
        "client_secret": PlatformSandbox.CLIENT_SECRET,
    }
    form = {"grant_type": "refresh_token", "refresh_token": REFRESH}
    if platform == "x":
        return http.post("/2/oauth2/token", data=form, auth=tuple(client.values()))
    if platform == "linkedin":
        return http.post("/oauth/v2/accessToken", data={**form, **client})
    exchange = {"grant_type": "fb_exchange_token", "fb_exchange_token": TOKEN, **client}
    return http.get(f"/{LATEST_GRAPH}/oauth/access_token", params=exchange)


@pytest.mark.parametrize("platform", ["x", "linkedin", "facebook"])
def test_a_minted_token_expires_after_the_expires_in_it_was_answered_with(
    platforms: PlatformSandbox, http: httpx.Client, clock: FakeClock, platform: str
) -> None:
    platforms.add_token(platform, TOKEN, refresh_token=REFRESH)

    answer = _refresh(http, platform).json()
    minted, lifetime = answer["access_token"], answer["expires_in"]

    assert lifetime == {"x": 7200, "linkedin": 5184000, "facebook": 5183944}[platform]
    clock.advance(seconds=lifetime - 1)
    assert platforms.check(platform, minted).token is TokenState.VALID
    clock.advance(seconds=1)
    assert platforms.check(platform, minted).token is TokenState.EXPIRED
