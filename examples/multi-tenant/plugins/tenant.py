"""Scope every request to one tenant: who it is, and which rows it may touch (before_request).

The tenant comes from a JWT (`Authorization: Bearer`, HS256, claim `config.claim`) or, when
`config.sources` lists "header", from `X-Tenant-Id` (for a gateway that authenticates clients itself).
Then, on a database endpoint with a `tenant` column and tenant-prefixed string ids:

- list: the `tenant` filter is forced to the caller's tenant (ANDed with the client's filters);
- get / update / patch / delete: an id of another tenant is a 404, exactly like a missing one;
- create: the id is assigned here (`<tenant>.<random>`), the tenant column is the caller's;
- update / patch: the tenant column cannot change.

A tenant named in the body that is not the caller's is a 403. The request goes on with `X-Tenant-Id` set
to the verified tenant (later plugins, such as tenant_rate_limit.py, key on it).
config: {secret: "...", claim: tenant, sources: [jwt, header], column: tenant}
"""
import base64
import hmac
import json
import re
import time
import uuid

TENANT = re.compile("^[a-z0-9][a-z0-9_-]{0,39}$")


def on_load(config):
    if len(config.get("secret") or "") < 32:
        raise ValueError("tenant needs config.secret of at least 32 characters (the HS256 key)")
    for source in config.get("sources", ["jwt"]):
        if source not in ("jwt", "header"):
            raise ValueError("config.sources may list jwt and header, not " + repr(source))


def refuse(status, code, message):
    headers = {"www-authenticate": "Bearer"} if status == 401 else {}
    return {"response": {"status": status, "headers": headers,
                         "json": {"error": {"code": code, "message": message}}}}


def b64decode(part):
    return base64.urlsafe_b64decode(part + "=" * (-len(part) % 4))


def verified_claims(token):
    """The claims of an HS256 token signed with config.secret, or None."""
    parts = token.split(".")
    if len(parts) != 3:
        return None
    try:
        header = json.loads(b64decode(parts[0]))
        claims = json.loads(b64decode(parts[1]))
        signature = b64decode(parts[2])
    except ValueError:
        return None
    if not isinstance(header, dict) or header.get("alg") != "HS256" or not isinstance(claims, dict):
        return None
    expected = hmac.new(config["secret"].encode(), (parts[0] + "." + parts[1]).encode(), "sha256").digest()
    if not hmac.compare_digest(signature, expected):
        return None
    expires = claims.get("exp")
    if expires is not None and (not isinstance(expires, (int, float)) or expires < time.time()):
        return None
    return claims


def tenant_of(request):
    """(tenant, None) or (None, refusal)."""
    sources = config.get("sources", ["jwt"])
    auth = request["headers"].get("authorization", "")
    from_header = request["headers"].get("x-tenant-id")
    tenant = None
    if auth and "jwt" in sources:
        if not auth.startswith("Bearer "):
            return None, refuse(401, "invalid_token", "the Authorization header must be 'Bearer <JWT>'")
        claims = verified_claims(auth[7:].strip())
        if claims is None:
            return None, refuse(401, "invalid_token",
                                "the token is malformed, expired or not signed with the service's key")
        tenant = claims.get(config.get("claim", "tenant"))
        if not isinstance(tenant, str) or not TENANT.match(tenant):
            claim = config.get("claim", "tenant")
            return None, refuse(401, "invalid_token", "the token has no valid '" + claim + "' claim")
        if from_header is not None and from_header != tenant:
            return None, refuse(403, "tenant_mismatch", "X-Tenant-Id does not match the token's tenant")
    elif from_header is not None and "header" in sources:
        if not TENANT.match(from_header):
            return None, refuse(400, "invalid_tenant", "X-Tenant-Id must be 1-40 lower-case letters, digits, "
                                                       "'-' or '_'")
        tenant = from_header
    if tenant is None:
        how = " or ".join(["a Bearer token" if s == "jwt" else "an X-Tenant-Id header" for s in sources])
        return None, refuse(401, "tenant_required", "say which tenant you are: send " + how)
    return tenant, None


def not_found(request, record_id):
    return refuse(404, "not_found", "no " + request["endpoint"] + " record with id '" + record_id[:80] + "'")


def scoped_body(request, tenant, creating):
    """The JSON body with the caller's tenant (and, on create, a fresh id); or a refusal."""
    column = config.get("column", "tenant")
    body = request["json"]
    if not isinstance(body, dict):
        return None, None  # the database endpoint answers 400/415 for a body that is not a JSON object
    given = body.get(column)
    if given is not None and given != tenant:
        return None, refuse(403, "tenant_mismatch", "field " + column + " must be your tenant ('" + tenant +
                            "') or left out")
    if creating and "id" in body:
        return None, refuse(400, "validation_failed", "id is assigned by the server; leave it out")
    body = dict(body)
    if creating or request["method"] == "PUT" or column in body:
        body[column] = tenant
    if creating:
        body["id"] = tenant + "." + uuid.uuid4().hex[:16]
    return body, None


def before_request(request):
    tenant, refusal = tenant_of(request)
    if refusal:
        return refusal
    headers = dict(request["headers"])
    headers["x-tenant-id"] = tenant
    changed = {"headers": headers}
    method = request["method"]
    record_id = request["path_params"].get("id")
    if record_id is not None and not record_id.startswith(tenant + "."):
        return not_found(request, record_id)
    if record_id is None and method in ("GET", "HEAD"):
        query = dict(request["query"])
        query[config.get("column", "tenant")] = tenant
        changed["query"] = query
    if method in ("POST", "PUT", "PATCH"):
        body, refusal = scoped_body(request, tenant, record_id is None)
        if refusal:
            return refusal
        if body is not None:
            changed["json"] = body
    return changed
