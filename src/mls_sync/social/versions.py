"""The platforms' API versions as data: our defaults, the setting that changes each, and the
sunset dates the platforms publish, so a version about to be retired is seen before it fails.

A platform that retires a version refuses every call made with it, so a stale default is an
outage of that platform's deletes. Two checks catch it: the published sunset dates below (read
by `mls-sync doctor`), and the platforms' own answer, which the clients turn into a
VERSION_RETIRED error (the outbox then defers the job and alerts once per platform and version).

Sources (read 2026-12):
- LinkedIn: monthly versions (``LinkedIn-Version: YYYYMM``), each "supported and stable for a
  minimum of one year before sunset"; a sunset version answers HTTP 426
  ``{"status": 426, "code": "NONEXISTENT_VERSION", "message": "Requested version 202411 is not
  active"}``. https://learn.microsoft.com/en-us/linkedin/marketing/versioning and the sunset
  table at https://learn.microsoft.com/en-us/linkedin/marketing/integrations/migrations
  (202411 sunset 2025-11-17; 202603 sunsets 2027-03-16); the 426 body as integrations report it
  (n8n-io/n8n#28967, ComposioHQ/composio#4320). 202609 is the newest public integrations use in
  September 2026 (n8n PR #39065), supported at least until September 2027.
- Meta Graph API (Facebook Pages and Instagram): "each version will remain for at least 2
  years"; the versions table lists v21.0 available until 2027-01-21, v22.0 until 2027-05-20,
  v23.0 until 2027-10-08, v24.0 until 2028-02-18, v25.0 until 2028-07-29:
  https://developers.facebook.com/docs/graph-api/changelog/versions and
  https://developers.facebook.com/docs/graph-api/guides/versioning. Graph may upgrade a call to
  a retired version silently or refuse it with code 2635 ("(#2635) You are calling a
  deprecated version of the ... API. Please update to the latest version: v25.0.",
  facebook/facebook-nodejs-business-sdk#239); the dates catch the silent case.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date

from mls_sync.config import GRAPH_DEFAULT, LINKEDIN_DEFAULT
from mls_sync.social.base import Platform


@dataclass(frozen=True)
class VersionPolicy:
    platform: Platform
    setting: str  # the environment variable that changes it
    default: str
    # Published sunset dates we know of; a version missing here is judged by the platform alone.
    sunsets: dict[str, date]


_GRAPH_SUNSETS = {
    "v19.0": date(2026, 5, 21),
    "v20.0": date(2026, 9, 24),
    "v21.0": date(2027, 1, 21),
    "v22.0": date(2027, 5, 20),
    "v23.0": date(2027, 10, 8),
    "v24.0": date(2028, 2, 18),
    "v25.0": date(2028, 7, 29),
}

POLICIES: dict[Platform, VersionPolicy] = {
    Platform.LINKEDIN: VersionPolicy(
        Platform.LINKEDIN,
        "MLS_SYNC_LINKEDIN_API_VERSION",
        LINKEDIN_DEFAULT,
        {
            "202411": date(2025, 11, 17),
            "202510": date(2026, 10, 15),
            "202511": date(2026, 11, 16),
            "202601": date(2027, 1, 15),
            "202602": date(2027, 2, 15),
            "202603": date(2027, 3, 16),
            "202604": date(2027, 4, 15),
        },
    ),
    Platform.FACEBOOK: VersionPolicy(
        Platform.FACEBOOK, "MLS_SYNC_FACEBOOK_API_VERSION", GRAPH_DEFAULT, _GRAPH_SUNSETS
    ),
    Platform.INSTAGRAM: VersionPolicy(
        Platform.INSTAGRAM, "MLS_SYNC_INSTAGRAM_API_VERSION", GRAPH_DEFAULT, _GRAPH_SUNSETS
    ),
}


def setting_for(platform: str) -> str | None:
    """The environment variable holding the platform's API version, if it has one."""
    try:
        policy = POLICIES.get(Platform(platform))
    except ValueError:
        return None
    return policy.setting if policy is not None else None


def sunset_of(platform: str, version: str) -> date | None:
    try:
        policy = POLICIES.get(Platform(platform))
    except ValueError:
        return None
    return policy.sunsets.get(version) if policy is not None else None


def retired_message(platform: str, version: str, detail: str) -> str:
    """What a person reads when a platform refuses our version: which setting to change."""
    setting = setting_for(platform) or "the platform's API version setting"
    return (
        f"{detail} (API version {version} is retired: set {setting} to a supported version "
        "and restart; affected jobs wait, nothing is lost)"
    )
