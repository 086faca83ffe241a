"""WorkflowDefinitionRepository on Redis. Versions are immutable once stored."""

from __future__ import annotations

import hashlib
import time
from dataclasses import replace

import redis

from engine.domain.definition import WorkflowDefinition, parse_definition
from engine.errors import DefinitionError, DefinitionNotFound
from engine.persistence import scripts
from engine.persistence.codec import dumps, loads
from engine.persistence.keys import Keys
from engine.settings import EngineSettings

LATEST_TTL_S = 1.0
"""How long "the latest active version" of a name is cached: a start without a version does not
pay two round trips, and an applied or (de)activated version is seen within a second everywhere."""


class DefinitionRepository:
    def __init__(self, client: redis.Redis, settings: EngineSettings):
        self.r = client
        self.keys = Keys(settings.key_prefix)
        self._save = client.register_script(scripts.SAVE_DEFINITION)
        self._cache: dict[str, WorkflowDefinition] = {}
        self._latest: dict[str, tuple[float, WorkflowDefinition]] = {}

    def save(self, definition: WorkflowDefinition) -> tuple[WorkflowDefinition, bool]:
        """Store a definition. Without a version it gets the next one, unless the latest has the
        same content. Returns the stored definition and whether it was new."""
        definition.validate()
        content = dumps(_canonical(definition.content_dict()))
        digest = hashlib.sha256(content.encode()).hexdigest()
        data = definition.to_dict()
        data["version"] = "__V__"
        k = self.keys
        res = self._save(
            keys=[k.definitions, k.definition_versions(definition.name), k.active_definitions, k.definition_hashes],
            args=[definition.name, definition.version or 0, dumps(data), digest, 1 if definition.active else 0],
        )
        version, created = int(res[0]), int(res[1])
        self._latest.pop(definition.name, None)
        if version == -1:
            raise DefinitionError(
                [f"version {created} already exists with different content; apply it as a new version"],
                definition.name,
            )
        return replace(definition, version=version), bool(created)

    def find_by_id(self, definition_id: str) -> WorkflowDefinition | None:
        cached = self._cache.get(definition_id)
        if cached is not None:
            return cached
        raw = self.r.hget(self.keys.definitions, definition_id)
        if raw is None:
            return None
        definition = parse_definition(loads(raw))
        self._cache[definition_id] = definition  # versions are immutable: safe to cache forever
        return definition

    def find_by_name_and_version(self, name: str, version: int) -> WorkflowDefinition | None:
        return self.find_by_id(f"{name}:{version}")

    def get(self, name: str, version: int | None = None) -> WorkflowDefinition:
        """The named version, or the latest active one."""
        if version is not None:
            found = self.find_by_name_and_version(name, version)
            if found is None:
                raise DefinitionNotFound(name, version)
            return found
        cached = self._latest.get(name)
        if cached is not None and time.monotonic() - cached[0] < LATEST_TTL_S:
            return cached[1]
        active = self.active_versions(name)
        if not active:
            raise DefinitionNotFound(name)
        found = self.find_by_name_and_version(name, max(active))
        self._latest[name] = (time.monotonic(), found)
        return found  # type: ignore[return-value]

    def versions(self, name: str) -> list[int]:
        return [int(v) for v in self.r.zrange(self.keys.definition_versions(name), 0, -1)]

    def active_versions(self, name: str) -> list[int]:
        versions = self.versions(name)
        if not versions:
            return []
        pipe = self.r.pipeline(transaction=False)
        for v in versions:
            pipe.sismember(self.keys.active_definitions, f"{name}:{v}")
        return [v for v, active in zip(versions, pipe.execute(), strict=True) if active]

    def find_active_definitions(self) -> list[WorkflowDefinition]:
        ids = sorted(self.r.smembers(self.keys.active_definitions))
        out = []
        for definition_id in ids:
            found = self.find_by_id(definition_id)
            if found is not None:
                out.append(replace(found, active=True))
        return out

    def all_definitions(self) -> list[WorkflowDefinition]:
        active = set(self.r.smembers(self.keys.active_definitions))
        out = []
        for definition_id in sorted(self.r.hkeys(self.keys.definitions)):
            found = self.find_by_id(definition_id)
            if found is not None:
                out.append(replace(found, active=definition_id in active))
        return out

    def set_active(self, name: str, version: int, active: bool) -> None:
        self._latest.pop(name, None)
        if self.find_by_name_and_version(name, version) is None:
            raise DefinitionNotFound(name, version)
        if active:
            self.r.sadd(self.keys.active_definitions, f"{name}:{version}")
        else:
            self.r.srem(self.keys.active_definitions, f"{name}:{version}")


def _canonical(value):
    if isinstance(value, dict):
        return {k: _canonical(value[k]) for k in sorted(value)}
    if isinstance(value, list):
        return [_canonical(v) for v in value]
    return value
