"""API keys: roles, hashing, where keys come from, and the first admin key of ``wes up``.

A key is only ever stored hashed: HMAC-SHA256 under a random per-key salt, compared with
``hmac.compare_digest``. Keys come from three places:

- ``WES_API_KEYS``: comma-separated ``role:key`` pairs, hashed when loaded (ids ``env-1``, ``env-2``...);
- ``WES_API_KEYS_FILE``: one ``role:key`` or ``role:sha256:<salt hex>:<digest hex>`` per line (``file-N``);
- Redis (``engine.ApiKeyStore``): created by an admin through the API, or by ``ensure_admin_key``. These
  have the form ``wes_<id>_<secret>``; the id finds the record in one lookup, the secret is checked
  against its hash.

A fast hash (not a password KDF) is deliberate: keys are 256-bit random secrets, and every request
checks one. ``python -m api.auth hash ROLE [KEY]`` prints a file line holding no secret.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import re
import secrets
import sys
import time
from dataclasses import dataclass
from enum import StrEnum
from pathlib import Path
from typing import TYPE_CHECKING, Any

from api.errors import conflict
from api.settings import ApiSettings
from engine import ApiKeyStore, ApiStores, ConfigurationError, NotFound

if TYPE_CHECKING:
    from engine import EngineClient

KEY_FORMAT = re.compile(r"wes_([0-9a-f]{12})_([A-Za-z0-9_-]{20,})")
CACHE_MAX = 10_000


class Role(StrEnum):
    VIEWER = "viewer"
    OPERATOR = "operator"
    ADMIN = "admin"

    @property
    def rank(self) -> int:
        return _RANKS[self]

    def allows(self, needed: Role) -> bool:
        return self.rank >= needed.rank


_RANKS = {Role.VIEWER: 0, Role.OPERATOR: 1, Role.ADMIN: 2}


@dataclass(frozen=True)
class Principal:
    """Who is calling: a key's id and role, never the key."""

    key_id: str
    role: Role
    name: str


@dataclass(frozen=True)
class StoredKey:
    key_id: str
    role: Role
    name: str
    salt: bytes
    digest: bytes
    source: str
    """``env``, ``file`` or ``redis`` (only these can be revoked through the API)."""
    created_at: float | None = None
    created_by: str | None = None

    def matches(self, presented: str) -> bool:
        return hmac.compare_digest(digest(presented, self.salt), self.digest)

    def principal(self) -> Principal:
        return Principal(self.key_id, self.role, self.name)

    def record(self) -> str:
        return json.dumps(
            {
                "role": self.role.value,
                "name": self.name,
                "salt": self.salt.hex(),
                "hash": self.digest.hex(),
                "created_at": self.created_at,
                "created_by": self.created_by,
            }
        )

    @classmethod
    def from_record(cls, key_id: str, raw: str) -> StoredKey:
        data = json.loads(raw)
        return cls(
            key_id,
            Role(data["role"]),
            data.get("name", ""),
            bytes.fromhex(data["salt"]),
            bytes.fromhex(data["hash"]),
            "redis",
            data.get("created_at"),
            data.get("created_by"),
        )


def digest(key: str, salt: bytes) -> bytes:
    return hmac.new(salt, key.encode(), hashlib.sha256).digest()


def parse_role(raw: str, where: str) -> Role:
    try:
        return Role(raw.strip().lower())
    except ValueError:
        raise ConfigurationError(f"{where}: unknown role {raw.strip()!r} (viewer, operator or admin)")


def configured_keys(settings: ApiSettings) -> list[StoredKey]:
    """Keys of ``WES_API_KEYS`` and the keys file, hashed; ConfigurationError for a malformed entry."""
    out: list[StoredKey] = []
    pairs = [p.strip() for p in settings.keys.split(",") if p.strip()]
    for n, pair in enumerate(pairs, 1):
        role, sep, key = pair.partition(":")
        if not sep or not key:
            raise ConfigurationError(f"WES_API_KEYS entry {n}: expected role:key")
        salt = secrets.token_bytes(16)
        out.append(StoredKey(f"env-{n}", parse_role(role, f"WES_API_KEYS entry {n}"), f"WES_API_KEYS #{n}",
                             salt, digest(key, salt), "env"))  # fmt: skip
    if settings.keys_file is not None:
        out.extend(_file_keys(settings.keys_file))
    return out


def _file_keys(path: Path) -> list[StoredKey]:
    try:
        lines = path.read_text().splitlines()
    except OSError as exc:
        raise ConfigurationError(f"cannot read the API keys file {path}: {exc}")
    out = []
    n = 0
    for lineno, line in enumerate(lines, 1):
        line = line.split("#", 1)[0].strip()
        if not line:
            continue
        n += 1
        where = f"{path}:{lineno}"
        role_raw, _, rest = line.partition(":")
        role = parse_role(role_raw, where)
        parts = rest.split(":")
        if len(parts) == 3 and parts[0] == "sha256":
            try:
                salt, hashed = bytes.fromhex(parts[1]), bytes.fromhex(parts[2])
            except ValueError:
                raise ConfigurationError(f"{where}: salt and digest must be hex")
        elif rest:
            salt = secrets.token_bytes(16)
            hashed = digest(rest, salt)
        else:
            raise ConfigurationError(f"{where}: expected role:key or role:sha256:<salt>:<digest>")
        out.append(StoredKey(f"file-{n}", role, f"{path.name}:{lineno}", salt, hashed, "file"))
    return out


def new_key() -> tuple[str, str]:
    """A fresh (id, key) pair."""
    key_id = secrets.token_hex(6)
    return key_id, f"wes_{key_id}_{secrets.token_urlsafe(32)}"


def make_key(role: Role, name: str, created_by: str) -> tuple[StoredKey, str]:
    key_id, key = new_key()
    salt = secrets.token_bytes(16)
    return StoredKey(key_id, role, name, salt, digest(key, salt), "redis", time.time(), created_by), key


class KeyStore:
    """Verifies presented keys (async, on the request path) and manages stored ones (sync, admin)."""

    def __init__(self, store: ApiKeyStore, settings: ApiSettings):
        self.store = store
        self.settings = settings
        self.configured = configured_keys(settings)
        self._cache: dict[bytes, tuple[float, Principal]] = {}

    async def authenticate(self, presented: str) -> Principal | None:
        fingerprint = hashlib.sha256(presented.encode()).digest()
        now = time.monotonic()
        cached = self._cache.get(fingerprint)
        if cached is not None and cached[0] > now:
            return cached[1]
        principal = self._match_configured(presented) or await self._match_stored(presented)
        if principal is not None:
            if len(self._cache) >= CACHE_MAX:
                self._cache.clear()
            self._cache[fingerprint] = (now + self.settings.auth_cache_seconds, principal)
        return principal

    def _match_configured(self, presented: str) -> Principal | None:
        found = None
        for key in self.configured:  # every one checked: the time taken says nothing about which matched
            if key.matches(presented):
                found = key.principal()
        return found

    async def _match_stored(self, presented: str) -> Principal | None:
        m = KEY_FORMAT.fullmatch(presented)
        if m is None:
            return None
        raw = await self.store.find(m.group(1))
        if raw is None:
            return None
        stored = StoredKey.from_record(m.group(1), raw)
        return stored.principal() if stored.matches(presented) else None

    # ------------------------------------------------------------------ management (admin)
    def stored(self) -> list[StoredKey]:
        raw = self.store.records()
        return sorted((StoredKey.from_record(k, v) for k, v in raw.items()), key=lambda k: k.created_at or 0)

    def all(self) -> list[StoredKey]:
        return [*self.configured, *self.stored()]

    def create(self, role: Role, name: str, created_by: str) -> tuple[StoredKey, str]:
        stored, key = make_key(role, name, created_by)
        self.store.put(stored.key_id, stored.record())
        return stored, key

    def revoke(self, key_id: str) -> StoredKey:
        for key in self.configured:
            if key.key_id == key_id:
                raise conflict(f"key {key_id} comes from the {key.source} configuration; remove it there")
        raw = self.store.remove(key_id)
        if raw is None:
            raise KeyNotFound(key_id)
        self._cache.clear()
        return StoredKey.from_record(key_id, raw)


class KeyNotFound(NotFound):
    def __init__(self, key_id: str):
        super().__init__(f"no API key with id {key_id!r}")


def ensure_admin_key(client: EngineClient, settings: ApiSettings | None = None) -> str | None:
    """For ``wes up``: with no key configured (``WES_API_KEYS``, keys file) and none stored, create an
    admin key, store only its hash and return it (print it once). Otherwise None."""
    settings = settings or ApiSettings(engine=client.settings)
    if configured_keys(settings):
        return None
    stored, key = make_key(Role.ADMIN, "first admin key (wes up)", "wes up")
    return key if ApiStores(client.engine.stores).api_keys.put_first(stored.key_id, stored.record()) else None


def key_summary(key: StoredKey) -> dict[str, Any]:
    return {
        "key_id": key.key_id,
        "role": key.role,
        "name": key.name,
        "source": key.source,
        "created_at": key.created_at,
        "created_by": key.created_by,
    }


USAGE = """usage: python -m api.auth hash ROLE [KEY]   (a new key is generated without KEY)
       python -m api.auth bootstrap           (with no key configured or stored: create an admin key)"""


def _main(argv: list[str]) -> int:
    if argv == ["bootstrap"]:
        from engine import EngineClient

        key = ensure_admin_key(EngineClient())
        print(f"admin key (shown once: only its hash is stored): {key}" if key else "API keys already exist")
        return 0
    if len(argv) < 2 or argv[0] != "hash":
        print(USAGE, file=sys.stderr)
        return 2
    role = parse_role(argv[1], "ROLE")
    key = argv[2] if len(argv) > 2 else new_key()[1]
    salt = secrets.token_bytes(16)
    if len(argv) <= 2:
        print(f"key (give it to the client; it is not stored): {key}", file=sys.stderr)
    print(f"{role.value}:sha256:{salt.hex()}:{digest(key, salt).hex()}")
    return 0


if __name__ == "__main__":
    sys.exit(_main(sys.argv[1:]))
