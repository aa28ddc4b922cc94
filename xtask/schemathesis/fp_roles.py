"""A schemathesis check of who may do what, loaded by `cargo xtask schemathesis`
(SCHEMATHESIS_HOOKS=fp_roles): the run's role (FP_SCHEMATHESIS_ROLE) must never get a 2xx from
an operation that needs a higher one. The same table as the API's role matrix test
(api-server/tests/role_matrix.rs)."""

import os

import schemathesis

RANK = {"anonymous": 0, "viewer": 1, "analyst": 2, "admin": 3}

# Operations open to anyone; every other operation needs at least a viewer unless listed below.
PUBLIC = {
    "GET /health/live",
    "GET /health/ready",
    "GET /metrics",
    "POST /api/v1/auth/register",
    "POST /api/v1/auth/login",
    "POST /api/v1/auth/refresh",
    "POST /api/v1/auth/logout",
}
NEEDS = {
    "POST /api/v1/admin/import": "analyst",
    "POST /api/v1/admin/models/refit": "analyst",
    "GET /api/v1/models/{name}/evaluation": "analyst",
    "GET /api/v1/admin/users": "admin",
    "PATCH /api/v1/admin/users/{id}": "admin",
}


def needed(label):
    if label in PUBLIC:
        return "anonymous"
    return NEEDS.get(label, "viewer")


@schemathesis.check
def role_boundary(ctx, response, case):
    """No 2xx for a role below what the operation needs."""
    role = os.environ["FP_SCHEMATHESIS_ROLE"]
    label = case.operation.label
    need = needed(label)
    if RANK[role] < RANK[need] and 200 <= response.status_code < 300:
        raise AssertionError(
            f"{label} answered {response.status_code} to a {role}; it needs {need}"
        )
