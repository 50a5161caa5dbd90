"""The one authentication class (reads ``Authorization: Bearer`` or ``X-API-Key``) and the
one permission class (the key holds the scope the request needs)."""

from __future__ import annotations

from rest_framework import authentication, exceptions, permissions


class ApiKeyAuthentication(authentication.BaseAuthentication):
    def authenticate(self, request):
        # Imported here: DRF loads this class while errors.py (which services use) imports DRF.
        from .services import ApiKeyExpired, api_key_authenticate

        raw = self._raw_key(request)
        if raw is None:
            return None
        try:
            key = api_key_authenticate(raw)
        except ApiKeyExpired as expired:
            raise exceptions.AuthenticationFailed(expired.message) from None
        if key is None:
            raise exceptions.AuthenticationFailed("Invalid or revoked API key")
        return key.user, key

    def authenticate_header(self, request) -> str:
        return "Bearer"

    @staticmethod
    def _raw_key(request) -> str | None:
        header = request.headers.get("Authorization", "")
        if header:
            scheme, _, token = header.partition(" ")
            if scheme.lower() != "bearer" or not token.strip():
                raise exceptions.AuthenticationFailed("Authorization header must be 'Bearer <key>'")
            return token.strip()
        api_key = request.headers.get("X-API-Key", "").strip()
        return api_key or None


class ScopePermission(permissions.IsAuthenticated):
    """An authenticated key that holds the scope the request needs (``needed_scope``); a
    key without it is a 403 that names the scope."""

    def has_permission(self, request, view) -> bool:
        if not super().has_permission(request, view):
            return False
        key = request.auth
        scope = needed_scope(request, view)
        if getattr(key, "allows", None) is None or key.allows(scope):
            return True
        raise exceptions.PermissionDenied(
            f"This API key lacks the {scope!r} scope this request needs (its scopes: "
            f"{', '.join(key.scopes) or 'none'})")


def needed_scope(request, view) -> str:
    """The scope a request needs: what the view declares for its action (``action_scopes``)
    or for all of it (``key_scope``), else by method: reads ``read``, ``DELETE`` ``delete``,
    other writes ``write``. Searches sent as POST declare ``read``."""
    declared = getattr(view, "action_scopes", {}).get(getattr(view, "action", None))
    if declared is None:
        declared = getattr(view, "key_scope", None)
    if declared is not None:
        return declared
    if request.method in permissions.SAFE_METHODS:
        return "read"
    return "delete" if request.method == "DELETE" else "write"
