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
    key without it is a 403 that names the scope. A refused request still counts against
    the key's rate limit (DRF checks permissions before throttles), and a method the route
    does not serve is left to its 405."""

    def has_permission(self, request, view) -> bool:
        if not super().has_permission(request, view):
            return False
        key = request.auth
        if getattr(key, "allows", None) is None or not _served(request, view):
            return True
        scope = needed_scope(request, view)
        if scope == ANY_SCOPE or key.allows(scope):
            return True
        if request.method == request._request.method:  # not OPTIONS' probe of a method
            view.check_throttles(request)
        raise exceptions.PermissionDenied(
            f"This API key lacks the {scope!r} scope this request needs (its scopes: "
            f"{', '.join(key.scopes) or 'none'})")


# A view's ``key_scope`` for what every valid key may ask, whatever its scopes (its quota).
ANY_SCOPE = "any"


def needed_scope(request, view) -> str:
    """The scope a request needs: what the view declares for its action (``action_scopes``)
    or for all of it (``key_scope``), else by method: reads ``read``, ``DELETE`` ``delete``,
    other writes ``write``. Searches sent as POST declare ``read``."""
    declared = getattr(view, "action_scopes", {}).get(_action(request, view))
    if declared is None:
        declared = getattr(view, "key_scope", None)
    if declared is not None:
        return declared
    if request.method in permissions.SAFE_METHODS:
        return "read"
    return "delete" if request.method == "DELETE" else "write"


def _action(request, view) -> str | None:
    """The viewset action the request runs. OPTIONS describes the route's other methods by
    checking each as if it were sent (DRF's metadata): the action of that method."""
    action = getattr(view, "action", None)
    if action == "metadata":
        action = getattr(view, "action_map", {}).get(request.method.lower(), action)
    return action


def _served(request, view) -> bool:
    method = request.method.lower()
    if hasattr(view, "action_map"):
        return method in view.action_map or method == "options"
    return hasattr(view, method)
