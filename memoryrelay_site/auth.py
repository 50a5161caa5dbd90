"""The one authentication class: reads ``Authorization: Bearer`` or ``X-API-Key``."""

from __future__ import annotations

from rest_framework import authentication, exceptions


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
