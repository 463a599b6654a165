"""Point the panel at a running TestProvider, as settings.py does when OIDC_ISSUER is set
(tests/oidc/test_settings.py checks that settings.py itself does the same from the environment)."""

from __future__ import annotations

import copy

from mycelia_ops.oidc import provider_metadata_forget
from tests.oidc.provider import TestProvider

CLIENT_ID = "mycelia-ops"
CLIENT_SECRET = "a-client-secret-for-the-tests"
PROVIDER_NAME = "Corp SSO"
CONTACT = "the platform team (#platform-help)"
ROLE_GROUPS = {
    "administrators": ["ops-admins"],
    "release_managers": ["release-team"],
    "stakeholders": ["everyone"],
}


def use_provider(settings, provider: TestProvider, *, panel_url: str) -> None:
    provider.add_client(
        CLIENT_ID,
        CLIENT_SECRET,
        redirect_uris=[f"{panel_url}/oidc/callback/"],
        post_logout_redirect_uris=[f"{panel_url}/accounts/login/"],
    )
    settings.OIDC_ISSUER = provider.issuer
    settings.OIDC_RP_CLIENT_ID = CLIENT_ID
    settings.OIDC_RP_CLIENT_SECRET = CLIENT_SECRET
    settings.OIDC_ROLE_GROUPS = ROLE_GROUPS
    settings.OIDC_PROVIDER_NAME = PROVIDER_NAME
    settings.OIDC_ACCESS_CONTACT = CONTACT
    settings.AUTHENTICATION_BACKENDS = [
        *settings.AUTHENTICATION_BACKENDS,
        "mycelia_ops.oidc.OIDCBackend",
    ]
    policy = copy.deepcopy(settings.CONTENT_SECURITY_POLICY)
    policy["DIRECTIVES"]["form-action"].append(provider.base_url)
    settings.CONTENT_SECURITY_POLICY = policy
    provider_metadata_forget()
