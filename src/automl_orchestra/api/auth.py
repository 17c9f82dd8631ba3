"""Bearer-token authentication with roles: viewer < editor < admin.

With no tokens configured (allowed only on a loopback bind) every caller is an admin: the single-user,
zero-set-up default. Code steps additionally require a role listed in ``ORCHESTRA_CODE_ROLES``.
"""

from __future__ import annotations

import hmac

from fastapi import Request

from automl_orchestra.api.errors import ApiError
from automl_orchestra.config import Settings
from automl_orchestra.runtime import job_tokens

RANK = {"viewer": 0, "editor": 1, "admin": 2}


def role_of(request: Request, settings: Settings) -> str:
    role = _authenticate(request, settings)
    request.state.role = role  # for the request's log line (api/observability.py)
    return role


def _authenticate(request: Request, settings: Settings) -> str:
    if not settings.auth_enabled:
        return "admin"
    header = request.headers.get("authorization", "")
    scheme, _, token = header.partition(" ")
    if scheme.lower() != "bearer" or not token:
        raise ApiError(
            401,
            "authentication required: send 'Authorization: Bearer <token>'",
            headers={"WWW-Authenticate": "Bearer"},
        )
    for known, role in settings.token_roles.items():
        if hmac.compare_digest(known.encode(), token.strip().encode()):
            return role
    job_role = job_tokens.verify(settings.tokens, token.strip())  # a driver step's short-lived token
    if job_role is not None:
        return job_role
    raise ApiError(401, "unknown token", headers={"WWW-Authenticate": "Bearer"})


def require(request: Request, settings: Settings, minimum: str) -> str:
    role = role_of(request, settings)
    if RANK[role] < RANK[minimum]:
        raise ApiError(403, f"the {role} role may not do this; {minimum} or higher is required")
    return role


def require_code(role: str, settings: Settings) -> None:
    if not settings.allow_code:
        raise ApiError(403, "code steps are disabled on this server (ORCHESTRA_ALLOW_CODE=false)")
    if role not in settings.code_role_set:
        allowed = ", ".join(sorted(settings.code_role_set)) or "no role"
        raise ApiError(403, f"the {role} role may not run code; allowed: {allowed}")
